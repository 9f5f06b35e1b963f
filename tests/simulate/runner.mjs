// Runs one Step Functions definition in aws-local-stepfunctions (a real
// Amazon States Language interpreter) with every Task bound to a local
// program, for `cargo xtask simulate` (xtask/src/simulate/).
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
//                      evaluate_on_exit, platform, max_parallel,
//                      interrupt: { attempts, after_output, array_index } } }
//                    (batch.mjs)
//   buckets          { BucketName: folder }: the S3 objects a Distributed
//                    Map reads and writes (distributed_map.mjs)
//   max_parallel     Distributed Map children at once on this machine
//   sns              { TopicArn: { dir } }: each publish is also written there
//   state_machines   { StateMachineArn: {} }: startExecution targets
//
// Protocol on stdout, one JSON object per line:
//   {"event":"task_token","state","token"}  a .waitForTaskToken task waits;
//      the driver answers on stdin with {"token","output"} (SendTaskSuccess),
//      {"token","error","cause"} (SendTaskFailure) or {"token","timeout":true}
//      (its TimeoutSeconds elapse), and reads back {"event":"task_answered","ok"}.
//   {"event":"result", ...}                 last line: the execution's status,
//      output or error, its path `events`, the inline Map labels, `map_runs`
//      (each Distributed Map's children with their own events), `notes`
//      (Batch attempts), `batch_jobs` (every job and array child), the
//      notifications, started executions and Lambda calls.
// Diagnostics go to stderr. Exit 0 whenever a result was written (the
// execution may have failed: that is in the result), 2 on a runner error.

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

import { Batch } from "./batch.mjs";
import { programRunner, stateError, tail } from "./common.mjs";
import { DistributedMaps, asTask, isDistributed, unsupported } from "./distributed_map.mjs";

const job = JSON.parse(readFileSync(process.argv[2], "utf8"));
const { StateMachine } = await import(pathToFileURL(job.interpreter).href);

const notifications = [];
const executions = [];
const batchJobs = [];
const lambdaCalls = [];
const mapRuns = [];
// Facts about a task attempt that the event log cannot show (Batch attempts).
const notes = [];

function emit(message) {
  process.stdout.write(JSON.stringify(message) + "\n");
}

/** Visits every state, in Map and Parallel states too, with the Map it runs in. */
function walk(definition, visit, map = null) {
  for (const [name, state] of Object.entries(definition.States ?? {})) {
    visit(name, state, map);
    if (state.Type === "Map") walk(state.ItemProcessor ?? state.Iterator ?? {}, visit, name);
    if (state.Type === "Parallel") (state.Branches ?? []).forEach((b) => walk(b, visit, map));
  }
}

const run = programRunner(job.log_dir);

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
const runOptions = { overrides: { taskResourceLocalHandlers: handlers, retryIntervalOverrides } };
const batch = new Batch({ bindings: job.batch, run, jobs: batchJobs, notes });
const distributedMaps = new DistributedMaps({
  StateMachine,
  runOptions,
  buckets: job.buckets,
  collect: collectEvents,
  mapLabel: job.map_label,
  maxParallel: job.max_parallel,
  mapRuns,
});

/** The local handler of a Task state by its resource, or null. */
function taskHandler(name, resource) {
  switch (resource) {
    case "arn:aws:states:::lambda:invoke":
      return (input) => invokeLambda(name, input);
    case "arn:aws:states:::lambda:invoke.waitForTaskToken":
      return async (input) => {
        await invokeLambda(name, input);
        return waitForToken(name);
      };
    case "arn:aws:states:::batch:submitJob.sync":
      return (input) => batch.submitJobSync(name, input);
    case "arn:aws:states:::sns:publish":
      return (input) => publish(name, input);
    case "arn:aws:states:::states:startExecution":
      return (input) => startExecution(name, input);
    default:
      return null;
  }
}

/** A handler whose failure is also told on stderr. */
function logged(name, handler) {
  return async (input) => {
    try {
      return await handler(input);
    } catch (error) {
      process.stderr.write(`runner: ${name} failed: ${error.name}: ${String(error.message).slice(0, 2000)}\n`);
      throw error;
    }
  };
}

/** Binds every Task of the definition to its local handler; returns what
 * could not be bound (a Task's resource, a Distributed Map's reader or
 * writer the emulation does not have). */
function bind(definition) {
  const unbound = [];
  walk(definition, (name, state) => {
    // `ResultPath: "$"` (the result replaces the input) is what an absent
    // ResultPath means, but the interpreter (3.0.0) stores the result under a
    // key named "$" instead; without the field it replaces the input, as
    // Step Functions does. Same meaning, so the definition runs as deployed.
    if (state.ResultPath === "$") delete state.ResultPath;
    for (const catcher of state.Catch ?? []) if (catcher.ResultPath === "$") delete catcher.ResultPath;
    if (state.Retry) retryIntervalOverrides[name] = job.retry_interval_ms ?? 0;
    if (isDistributed(state)) unbound.push(...unsupported(name, state));
    if (state.Type !== "Task") return;
    const handler = taskHandler(name, state.Resource);
    if (handler) handlers[name] = logged(name, handler);
    else unbound.push(`${name}: ${state.Resource}`);
  });
  return unbound;
}

/** Replaces every Distributed Map, at any depth, by a Task (`asTask`)
 * bound to its emulation, which runs the Map's ItemProcessor (itself with
 * its Distributed Maps replaced) as child executions. */
function replaceDistributedMaps(definition) {
  for (const [name, state] of Object.entries(definition.States ?? {})) {
    if (isDistributed(state)) {
      replaceDistributedMaps(state.ItemProcessor);
      handlers[name] = logged(name, (payload) => distributedMaps.run(name, state, payload));
      definition.States[name] = asTask(state);
    } else if (state.Type === "Map") replaceDistributedMaps(state.ItemProcessor ?? state.Iterator ?? {});
    else if (state.Type === "Parallel") (state.Branches ?? []).forEach(replaceDistributedMaps);
  }
}

// The definition is validated as rendered (asl-validator knows the
// Distributed Map's fields); the copy that runs has them replaced.
new StateMachine(job.definition, { validationOptions: { checkArn: true, checkPaths: true } });
const unbound = bind(job.definition);
if (unbound.length > 0) {
  process.stderr.write(`runner: no local binding for these resources:\n  ${unbound.join("\n  ")}\n`);
  process.exit(2);
}
const runnable = structuredClone(job.definition);
replaceDistributedMaps(runnable);
const mapOf = {};
walk(runnable, (name, _state, map) => {
  if (map) mapOf[name] = map;
});

// The path of states: every state entered, with its failures, retries and
// catches; states inside an inline Map carry the iteration's label (a
// Distributed Map's children are executions of their own: `map_runs`).
const labels = {};
async function collectEvents(eventLogs) {
  const events = [];
  for await (const event of eventLogs) {
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
  return events;
}
const machine = new StateMachine(runnable, { validationOptions: { noValidate: true } });
const execution = machine.run(job.input, { ...runOptions, context: job.context });

const collecting = collectEvents(execution.eventLogs);

const result = { status: "SUCCEEDED" };
try {
  result.output = await execution.result;
} catch (error) {
  result.status = "FAILED";
  const cause = error.cause ?? error;
  result.error = cause.name ?? error.name;
  result.cause = String(cause.message ?? error.message);
}
emit({
  event: "result",
  ...result,
  events: await collecting,
  map_labels: labels,
  map_runs: mapRuns,
  notes,
  notifications,
  executions,
  batch_jobs: batchJobs,
  lambda_calls: lambdaCalls,
});
process.exit(0);
