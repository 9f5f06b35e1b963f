// AWS Batch behind `arn:aws:states:::batch:submitJob.sync`, emulated for
// tests/simulate/runner.mjs with the job definition's real command: each
// attempt is a process, retried under the definition's RetryStrategy
// (attempts, EvaluateOnExit) as Batch retries it, with a Spot reclamation
// sent as SIGTERM to the working process when a scenario asks for one.
//
// An array job (`ArrayProperties.Size` = N, 2 to 10,000) runs N children
// with AWS_BATCH_JOB_ARRAY_INDEX = 0..N-1, job ids `<parent>:<index>`; each
// child is retried alone; the parent SUCCEEDED only when every child did,
// and its description is what DescribeJobs gives for an array parent
// (ArrayProperties {Size, StatusSummary}, no attempts of its own).
// Followed: AWS Batch User Guide "Array jobs"; API reference
// ArrayPropertiesDetail, EvaluateOnExit, AttemptDetail.

import { pool, stateError, tail } from "./common.mjs";

/** Batch's glob: `*` only at the end, matching any suffix (also empty). */
function globMatches(pattern, value) {
  if (pattern === undefined) return true;
  const text = value ?? "";
  return pattern.endsWith("*") ? text.startsWith(pattern.slice(0, -1)) : text === pattern;
}

/** The action of the first matching EvaluateOnExit rule; none matching retries (Batch's rule). */
function evaluateOnExit(rules, attempt) {
  for (const rule of rules ?? []) {
    if (
      globMatches(rule.OnStatusReason, attempt.StatusReason) &&
      globMatches(rule.OnReason, attempt.Container.Reason) &&
      globMatches(rule.OnExitCode, String(attempt.Container.ExitCode ?? ""))
    ) {
      return rule.Action.toUpperCase();
    }
  }
  return "RETRY";
}

const INTERRUPTED_REASON = {
  FARGATE: "Your Spot Task was interrupted.",
  EC2: "Host EC2 (instance i-0000000000simulated) terminated.",
};

/** Every status a job can be in, as an array parent's StatusSummary lists them. */
const JOB_STATUSES = ["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"];

export class Batch {
  /** `bindings`: job definition ARN → { command, env, attempts,
   * evaluate_on_exit, platform, interrupt: { attempts, after_output,
   * array_index }, max_parallel }; `jobs` and `notes` are the result's
   * records (every job and array child run; what each attempt did). */
  constructor({ bindings, run, jobs, notes }) {
    this.bindings = bindings ?? {};
    this.run = run;
    this.jobs = jobs;
    this.notes = notes;
  }

  async submitJobSync(state, input) {
    const binding = this.bindings[input.JobDefinition];
    if (!binding) throw stateError("Batch.ClientException", `no local binding for job definition ${input.JobDefinition}`);
    const env = { ...binding.env };
    for (const { Name, Value } of input.ContainerOverrides?.Environment ?? []) env[Name] = Value;
    const jobId = `simulated-${this.jobs.length + 1}`;
    const job = {
      JobArn: `arn:aws:batch:local:000000000000:job/${jobId}`,
      JobId: jobId,
      JobName: input.JobName,
      JobQueue: input.JobQueue,
      JobDefinition: input.JobDefinition,
      Status: "RUNNING",
      Attempts: [],
      CreatedAt: Date.now(),
    };
    this.jobs.push(job);
    if (input.ArrayProperties !== undefined) await this.runArray(state, binding, env, input.ArrayProperties, job);
    else await this.runAttempts(state, binding, env, job, null);
    if (job.Status !== "SUCCEEDED") {
      // What Step Functions reports for a failed job: the job description as the cause.
      throw stateError("States.TaskFailed", JSON.stringify(job));
    }
    return job;
  }

  /** Runs an array parent's children, each under the retry strategy, and
   * settles the parent from them. */
  async runArray(state, binding, env, arrayProperties, parent) {
    const size = arrayProperties.Size;
    if (!Number.isInteger(size) || size < 2 || size > 10000) {
      this.jobs.pop();
      throw stateError(
        "Batch.ClientException",
        `${state}: ArrayProperties.Size is ${JSON.stringify(size)}; AWS Batch takes an array size from 2 to 10000`,
      );
    }
    const children = Array.from({ length: size }, (_, index) => ({
      JobArn: `${parent.JobArn}:${index}`,
      JobId: `${parent.JobId}:${index}`,
      JobName: parent.JobName,
      JobQueue: parent.JobQueue,
      JobDefinition: parent.JobDefinition,
      ArrayProperties: { Index: index },
      Status: "RUNNABLE",
      Attempts: [],
      CreatedAt: parent.CreatedAt,
    }));
    this.jobs.push(...children);
    const work = children.map((child, index) => () =>
      this.runAttempts(state, binding, { ...env, AWS_BATCH_JOB_ARRAY_INDEX: String(index) }, child, index),
    );
    await pool(binding.max_parallel ?? 1, work);
    const summary = Object.fromEntries(JOB_STATUSES.map((s) => [s, children.filter((c) => c.Status === s).length]));
    const succeeded = summary.SUCCEEDED === size;
    Object.assign(parent, {
      Status: succeeded ? "SUCCEEDED" : "FAILED",
      ArrayProperties: { Size: size, StatusSummary: summary },
      StoppedAt: Date.now(),
    });
  }

  /** The attempts (1-based) in which the scenario reclaims this job's Spot
   * capacity: a plain job's when no array index is chosen, else only the
   * chosen child's. */
  interruptedAttempts(binding, arrayIndex) {
    const interrupt = binding.interrupt ?? { attempts: [] };
    const chosen = interrupt.array_index ?? null;
    return chosen === arrayIndex ? interrupt.attempts : [];
  }

  /** Runs one job (or one array child) until an attempt exits 0, an
   * EvaluateOnExit rule says EXIT, or the attempts run out; sets its Status. */
  async runAttempts(state, binding, env, job, arrayIndex) {
    const interrupted = this.interruptedAttempts(binding, arrayIndex);
    const who = arrayIndex === null ? state : `${state}-${arrayIndex}`;
    const note = (text) => this.notes.push({ state, ...(arrayIndex === null ? {} : { child: arrayIndex }), note: text });
    job.Status = "RUNNING";
    for (let n = 1; n <= binding.attempts; n++) {
      const { attempt, wasInterrupted, out } = await this.attempt(who, binding, env, job, n, interrupted.includes(n));
      job.Attempts.push(attempt);
      const exitCode = attempt.Container.ExitCode;
      if (exitCode === 0) {
        note(`attempt ${n}: exit 0`);
        Object.assign(job, { Status: "SUCCEEDED", StatusReason: attempt.StatusReason, StoppedAt: Date.now() });
        return;
      }
      const action = evaluateOnExit(binding.evaluate_on_exit, attempt);
      const last = n === binding.attempts || action === "EXIT";
      const outcome = last && action === "RETRY" ? "no attempts left" : action;
      note(`attempt ${n}: ${wasInterrupted ? "Spot interruption, " : ""}exit ${exitCode} -> ${outcome}`);
      if (!wasInterrupted) process.stderr.write(`runner: ${who} attempt ${n} exited ${exitCode}:\n${tail(out.stderr + out.stdout)}\n`);
      if (last) break;
    }
    Object.assign(job, { Status: "FAILED", StatusReason: job.Attempts.at(-1).StatusReason, StoppedAt: Date.now() });
  }

  /** One attempt: the job's process, SIGTERMed mid-work when `interrupt`
   * (once its log shows it reached `after_output`, as a reclamation lands
   * while the job works). */
  async attempt(who, binding, env, job, n, interrupt) {
    let wasInterrupted = false;
    const startedAt = Date.now();
    const afterOutput = binding.interrupt?.after_output;
    const out = await this.run(`${who}-attempt${n}`, binding.command, env, "", (output, child) => {
      if (interrupt && !wasInterrupted && output.includes(afterOutput)) {
        wasInterrupted = true;
        child.kill("SIGTERM");
      }
    });
    // A process killed by a signal it did not handle exits 128 + signal.
    const exitCode = out.code ?? 128 + 15;
    if (interrupt && !wasInterrupted) {
      throw stateError(
        "Simulation.InterruptionMissed",
        `${who}: attempt ${n} ended (exit ${exitCode}) before its log showed ${JSON.stringify(afterOutput)}, so it was never interrupted\n${tail(out.stderr + out.stdout)}`,
      );
    }
    const attempt = {
      Container: { ExitCode: exitCode, LogStreamName: `train/default/${job.JobId}-${n}` },
      StartedAt: startedAt,
      StoppedAt: Date.now(),
      StatusReason: wasInterrupted
        ? INTERRUPTED_REASON[binding.platform] ?? INTERRUPTED_REASON.FARGATE
        : "Essential container in task exited",
    };
    return { attempt, wasInterrupted, out };
  }
}
