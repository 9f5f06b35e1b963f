// Runs one Step Functions definition in aws-local-stepfunctions (a real
// Amazon States Language interpreter) with every Task bound to a local
// program, for `cargo xtask simulate` (xtask/src/simulate.rs).
//
//   node runner.mjs JOB.json
//
// JOB.json (written by xtask; every path absolute):
//   interpreter      the interpreter's ESM entry (build/main.node.esm.js)
//   definition       the rendered definition, ${Placeholders} already bound
//   input, context   the execution input and context object ($$.Execution,
//                    $$.Task.Token)
//   retry_interval_ms  every Retry waits this long (0 in simulation; the
//                    definition keeps its real intervals)
//   map_label        input field that names a Map iteration in the path
//   log_dir          where each program's output is kept
//   lambda           { FunctionName: { command: [...], env: {...} } }
//   batch            { JobDefinition: { command, env, attempts,
//                      evaluate_on_exit, platform, interrupt } }
//   sns              { TopicArn: { dir } }: each publish is also written there
//   state_machines   { StateMachineArn: {} }: startExecution targets
//
// Protocol on stdout, one JSON object per line:
//   {"event":"task_token","state","token"}  a .waitForTaskToken task waits;
//      the driver answers on stdin with {"token","output"} (SendTaskSuccess),
//      {"token","error","cause"} (SendTaskFailure) or {"token","timeout":true}
//      (its TimeoutSeconds elapse), and reads back {"event":"task_answered","ok"}.
//   {"event":"result", ...}                 last line: see `result` below.
// Diagnostics go to stderr. Exit 0 whenever a result was written (the
// execution may have failed: that is in the result), 2 on a runner error.

import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const job = JSON.parse(readFileSync(process.argv[2], "utf8"));
const { StateMachine } = await import(pathToFileURL(job.interpreter).href);

const notifications = [];
const executions = [];
const batchJobs = [];
const lambdaCalls = [];
// Facts about a task attempt that the event log cannot show (Batch attempts).
const notes = [];

function emit(message) {
  process.stdout.write(JSON.stringify(message) + "\n");
}

/** An error whose name is the ASL error name Retry and Catch match. */
function stateError(name, cause) {
  const error = new Error(cause);
  error.name = name;
  return error;
}

/** Visits every state, in Map and Parallel states too, with the Map it runs in. */
function walk(definition, visit, map = null) {
  for (const [name, state] of Object.entries(definition.States ?? {})) {
    visit(name, state, map);
    if (state.Type === "Map") walk(state.ItemProcessor ?? state.Iterator ?? {}, visit, name);
    if (state.Type === "Parallel") (state.Branches ?? []).forEach((b) => walk(b, visit, map));
  }
}

let programs = 0;

/** Runs a program with `stdin`, collecting stdout and stderr, which are also
 * kept in `log_dir` as NNN-<state>.log for a look after the run. */
function run(label, command, env, stdin, onOutput) {
  const log = job.log_dir ? join(job.log_dir, `${String(++programs).padStart(3, "0")}-${label}.log`) : null;
  return new Promise((resolve, reject) => {
    const child = spawn(command[0], command.slice(1), {
      env: { ...process.env, ...env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    // A job logs to stdout (CloudWatch takes both); a step's stdout is its result.
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
      onOutput?.(stdout + stderr, child);
    });
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
      onOutput?.(stdout + stderr, child);
    });
    child.on("error", reject);
    child.on("close", (code, signal) => {
      if (log) {
        mkdirSync(job.log_dir, { recursive: true });
        writeFileSync(log, `$ ${command.join(" ")}\n---- stdout\n${stdout}---- stderr\n${stderr}`);
      }
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.on("error", () => {}); // a program may exit without reading stdin
    child.stdin.end(stdin ?? "");
  });
}

const tail = (text) => text.trim().split("\n").slice(-15).join("\n");

// ---------------------------------------------------------------- Lambda
async function invokeLambda(state, input) {
  const binding = job.lambda?.[input.FunctionName];
  if (!binding) throw stateError("Lambda.ResourceNotFoundException", `no local binding for function ${input.FunctionName}`);
  const started = Date.now();
  const out = await run(state, binding.command, binding.env, JSON.stringify(input.Payload ?? {}));
  lambdaCalls.push({ state, function: input.FunctionName, exit: out.code, ms: Date.now() - started });
  if (out.code === 0) {
    let payload;
    try {
      payload = JSON.parse(out.stdout);
    } catch (e) {
      throw stateError("Lambda.Unknown", `${state}: the step printed no JSON: ${e.message}\n${tail(out.stderr)}`);
    }
    return { ExecutedVersion: "$LATEST", Payload: payload, StatusCode: 200 };
  }
  // A step failure: {"error": "<ErrorName>", "cause": "..."} on stdout. Step
  // Functions reports a function error as its errorType, with the Lambda
  // error document as the cause.
  let failure = null;
  try {
    failure = JSON.parse(out.stdout);
  } catch {
    failure = null;
  }
  if (out.code === 1 && failure?.error) {
    throw stateError(failure.error, JSON.stringify({ errorType: failure.error, errorMessage: failure.cause ?? "" }));
  }
  throw stateError(
    "Lambda.Unknown",
    `${state}: the step exited with ${out.code ?? out.signal} without a step error\n${tail(out.stderr)}`,
  );
}

// .waitForTaskToken: the function stores the token; the driver answers.
const stdinLines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function waitForToken(state) {
  const token = job.context?.Task?.Token;
  emit({ event: "task_token", state, token });
  for (;;) {
    const next = await stdinLines.next();
    if (next.done) throw stateError("States.Runtime", `${state}: the driver closed stdin while the task waited for its token`);
    const answer = JSON.parse(next.value);
    if (answer.token !== token) {
      // What SendTaskSuccess answers for a token it does not know.
      emit({ event: "task_answered", ok: false, message: "TaskDoesNotExist: the token is not one this execution issued" });
      continue;
    }
    emit({ event: "task_answered", ok: true });
    if (answer.timeout) throw stateError("States.Timeout", "");
    if (answer.error) throw stateError(answer.error, answer.cause ?? "");
    return answer.output ?? {};
  }
}

// ---------------------------------------------------------------- Batch
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
      return { action: rule.Action.toUpperCase(), rule };
    }
  }
  return { action: "RETRY", rule: null };
}

const INTERRUPTED_REASON = {
  FARGATE: "Your Spot Task was interrupted.",
  EC2: "Host EC2 (instance i-0000000000simulated) terminated.",
};

async function submitJobSync(state, input) {
  const binding = job.batch?.[input.JobDefinition];
  if (!binding) throw stateError("Batch.ClientException", `no local binding for job definition ${input.JobDefinition}`);
  const jobId = `simulated-${batchJobs.length + 1}`;
  const env = { ...binding.env };
  for (const { Name, Value } of input.ContainerOverrides?.Environment ?? []) env[Name] = Value;
  const description = {
    JobArn: `arn:aws:batch:local:000000000000:job/${jobId}`,
    JobId: jobId,
    JobName: input.JobName,
    JobQueue: input.JobQueue,
    JobDefinition: input.JobDefinition,
    Status: "RUNNING",
    Attempts: [],
    CreatedAt: Date.now(),
  };
  batchJobs.push(description);
  const interrupt = binding.interrupt ?? { attempts: [] };
  for (let n = 1; n <= binding.attempts; n++) {
    let interrupted = false;
    const startedAt = Date.now();
    const out = await run(`${state}-attempt${n}`, binding.command, env, "", (output, child) => {
      // A Spot reclamation: SIGTERM to the real process while it works
      // (once its log shows it reached `after_output`).
      if (!interrupted && interrupt.attempts.includes(n) && output.includes(interrupt.after_output)) {
        interrupted = true;
        child.kill("SIGTERM");
      }
    });
    // A process killed by a signal it did not handle exits 128 + signal.
    const exitCode = out.code ?? 128 + 15;
    const attempt = {
      Container: { ExitCode: exitCode, LogStreamName: `train/default/${jobId}-${n}` },
      StartedAt: startedAt,
      StoppedAt: Date.now(),
      StatusReason: interrupted
        ? INTERRUPTED_REASON[binding.platform] ?? INTERRUPTED_REASON.FARGATE
        : "Essential container in task exited",
    };
    description.Attempts.push(attempt);
    if (interrupt.attempts.includes(n) && !interrupted) {
      throw stateError(
        "Simulation.InterruptionMissed",
        `${state}: attempt ${n} ended (exit ${exitCode}) before its log showed ${JSON.stringify(interrupt.after_output)}, so it was never interrupted\n${tail(out.stderr + out.stdout)}`,
      );
    }
    if (exitCode === 0) {
      notes.push({ state, note: `attempt ${n}: exit 0` });
      Object.assign(description, { Status: "SUCCEEDED", StatusReason: attempt.StatusReason, StoppedAt: Date.now() });
      return description;
    }
    const { action } = evaluateOnExit(binding.evaluate_on_exit, attempt);
    const last = n === binding.attempts || action === "EXIT";
    notes.push({
      state,
      note: `attempt ${n}: ${interrupted ? "Spot interruption, " : ""}exit ${exitCode} -> ${last && action === "RETRY" ? "no attempts left" : action}`,
    });
    if (!interrupted) process.stderr.write(`runner: ${state} attempt ${n} exited ${exitCode}:\n${tail(out.stderr + out.stdout)}\n`);
    if (last) break;
  }
  Object.assign(description, { Status: "FAILED", StatusReason: description.Attempts.at(-1).StatusReason, StoppedAt: Date.now() });
  // What Step Functions reports for a failed job: the job description as the cause.
  throw stateError("States.TaskFailed", JSON.stringify(description));
}

// ---------------------------------------------------------------- SNS, Step Functions
function publish(state, input) {
  if (!job.sns?.[input.TopicArn]) throw stateError("SNS.NotFoundException", `no local topic ${input.TopicArn}`);
  const record = { state, topic: input.TopicArn, subject: input.Subject ?? null, message: input.Message };
  notifications.push(record);
  const dir = job.sns[input.TopicArn].dir;
  if (dir) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `${String(notifications.length).padStart(3, "0")}-${state}.json`), JSON.stringify(record, null, 2) + "\n");
  }
  return { MessageId: `simulated-${notifications.length}` };
}

function startExecution(state, input) {
  if (!job.state_machines?.[input.StateMachineArn]) {
    throw stateError("StepFunctions.StateMachineDoesNotExistException", `no local state machine ${input.StateMachineArn}`);
  }
  const name = input.Name ?? `simulated-${executions.length + 1}`;
  executions.push({ state, state_machine: input.StateMachineArn, name, input: input.Input });
  const executionArn = input.StateMachineArn.replace(":stateMachine:", ":execution:") + `:${name}`;
  return { ExecutionArn: executionArn, StartDate: new Date().toISOString() };
}

// ---------------------------------------------------------------- binding and running
const handlers = {};
const retryIntervalOverrides = {};
const unbound = [];
const mapOf = {};
walk(job.definition, (name, state, map) => {
  if (map) mapOf[name] = map;
  // `ResultPath: "$"` (the result replaces the input) is what an absent
  // ResultPath means, but the interpreter (3.0.0) stores the result under a
  // key named "$" instead; without the field it replaces the input, as
  // Step Functions does. Same meaning, so the definition runs as deployed.
  if (state.ResultPath === "$") delete state.ResultPath;
  for (const catcher of state.Catch ?? []) if (catcher.ResultPath === "$") delete catcher.ResultPath;
  if (state.Retry) retryIntervalOverrides[name] = job.retry_interval_ms ?? 0;
  if (state.Type !== "Task") return;
  const resource = state.Resource;
  let handler;
  if (resource === "arn:aws:states:::lambda:invoke") handler = (input) => invokeLambda(name, input);
  else if (resource === "arn:aws:states:::lambda:invoke.waitForTaskToken")
    handler = async (input) => {
      await invokeLambda(name, input);
      return waitForToken(name);
    };
  else if (resource === "arn:aws:states:::batch:submitJob.sync") handler = (input) => submitJobSync(name, input);
  else if (resource === "arn:aws:states:::sns:publish") handler = (input) => publish(name, input);
  else if (resource === "arn:aws:states:::states:startExecution") handler = (input) => startExecution(name, input);
  else unbound.push(`${name}: ${resource}`);
  if (handler) {
    handlers[name] = async (input) => {
      try {
        return await handler(input);
      } catch (error) {
        process.stderr.write(`runner: ${name} failed: ${error.name}: ${String(error.message).slice(0, 2000)}\n`);
        throw error;
      }
    };
  }
});
if (unbound.length > 0) {
  process.stderr.write(`runner: no local binding for these Task resources:\n  ${unbound.join("\n  ")}\n`);
  process.exit(2);
}

const machine = new StateMachine(job.definition, { validationOptions: { checkArn: true, checkPaths: true } });
const execution = machine.run(job.input, {
  overrides: { taskResourceLocalHandlers: handlers, retryIntervalOverrides },
  context: job.context,
});

// The path of states: every state entered, with its failures, retries and
// catches; states inside a Map carry the iteration's label.
const events = [];
const labels = {};
const collecting = (async () => {
  for await (const event of execution.eventLogs) {
    if (event.type === "MapIterationStarted") {
      const value = event.input?.[job.map_label];
      labels[`${event.parentState.name}/${event.index}`] = typeof value === "string" ? value : String(event.index);
      continue;
    }
    if (!event.state) continue;
    const entry = { type: event.type, state: event.state.name, state_type: event.state.type };
    if (event.index !== undefined) {
      entry.map = mapOf[event.state.name];
      entry.index = event.index;
    }
    if (event.type === "StateFailed") entry.error = event.Error;
    if (event.type === "StateCaught") entry.next = event.catch.catcher.Next;
    if (event.type === "StateRetried") entry.attempt = event.retry.attempt;
    events.push(entry);
  }
})();

const result = { status: "SUCCEEDED" };
try {
  result.output = await execution.result;
} catch (error) {
  result.status = "FAILED";
  const cause = error.cause ?? error;
  result.error = cause.name ?? error.name;
  result.cause = String(cause.message ?? error.message);
}
await collecting;
emit({
  event: "result",
  ...result,
  events,
  map_labels: labels,
  notes,
  notifications,
  executions,
  batch_jobs: batchJobs,
  lambda_calls: lambdaCalls,
});
process.exit(0);
