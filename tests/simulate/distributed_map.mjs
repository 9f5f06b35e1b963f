// The Distributed Map state for tests/simulate/runner.mjs. The interpreter
// (aws-local-stepfunctions 3.0.0) runs every Map inline and knows none of
// ItemReader, ItemBatcher, ResultWriter, ToleratedFailure*, child
// executions; so a Map whose ItemProcessor.ProcessorConfig.Mode is
// DISTRIBUTED is replaced by a Task (`asTask`, keeping its InputPath,
// ResultSelector, ResultPath, OutputPath, Retry, Catch, Next/End) bound to
// `DistributedMaps.run`, which does what the Map Run does:
//
// - reads the items: ItemReader `arn:aws:states:::s3:getObject` (ReaderConfig
//   InputType JSON, an array; or CSV, with CSVHeaderLocation FIRST_ROW or
//   GIVEN and CSVHeaders; MaxItems) from the bucket's local folder, or the
//   array at ItemsPath in the Map's input;
// - applies ItemSelector to each item ($ the Map's input, $$.Map.Item.Value
//   and .Index the item), then ItemBatcher (MaxItemsPerBatch[Path],
//   MaxInputBytesPerBatch[Path], BatchInput) into {Items, BatchInput};
// - starts one real child execution of the ItemProcessor per item or batch,
//   in the interpreter, its Tasks bound as the parent's, at most
//   MaxConcurrency[Path] (0: no limit) at a time (and at most `max_parallel`
//   on this machine);
// - fails with States.ExceedToleratedFailureThreshold when the failed items
//   exceed ToleratedFailurePercentage[Path] of all items or
//   ToleratedFailureCount[Path] (neither given: any failure), starting no
//   child after that ("Step Functions may continue to run child workflows
//   ... after the threshold is exceeded");
// - ResultWriter `arn:aws:states:::s3:putObject`: writes
//   <Prefix>/<map run id>/manifest.json {DestinationBucket, MapRunArn,
//   ResultFiles {FAILED, PENDING, SUCCEEDED: [{Key, Size}]}} and
//   SUCCEEDED_0.json / FAILED_0.json (a JSON array of {ExecutionArn, Input,
//   InputDetails, Name, Output | Error + Cause, OutputDetails, RedriveCount,
//   RedriveStatus, StartDate, StateMachineArn, Status, StopDate}, Input and
//   Output as JSON strings), and returns {MapRunArn, ResultWriterDetails
//   {Bucket, Key}}; without a ResultWriter it returns the children's outputs
//   in item order (a failed child's record in their place).
//
// Followed: the AWS Step Functions Developer Guide pages "ItemReader (Map)",
// "ItemSelector (Map)", "ItemBatcher (Map)", "ResultWriter (Map)"
// (docs.aws.amazon.com/step-functions/latest/dg/input-output-resultwriter.html:
// the state's output and the export's files) and "Tolerated failure threshold
// for Distributed Map state" (maprun-fail-threshold.html: failed or timed-out
// items over all items, exceeded = strictly more), with the manifest's shape
// as real exports show it (one file per status, empty statuses listed as []).
// Not emulated: Map Run events and metrics, DescribeMapRun, redrive, the
// WriterConfig transformations, the 5 GB split of result files, JSONL /
// manifest / Parquet readers and s3:listObjectsV2, results of a failed Map
// Run, EXPRESS child executions' semantics (children run as STANDARD).

import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, normalize, sep } from "node:path";

import { pool, stateError } from "./common.mjs";

/** The resource the stand-in Task names (never called: bound by state name). */
const SIMULATED_RESOURCE = "arn:aws:states:::simulated:distributedMap";
const ITEM_READER = "arn:aws:states:::s3:getObject";
const RESULT_WRITER = "arn:aws:states:::s3:putObject";
/** AWS's default when MaxConcurrency is 0 or absent. */
const AWS_MAX_CONCURRENCY = 10000;

export function isDistributed(state) {
  return state.Type === "Map" && state.ItemProcessor?.ProcessorConfig?.Mode === "DISTRIBUTED";
}

/** What of a Distributed Map the emulation cannot run, as sentences (none: it can). */
export function unsupported(name, state) {
  const problems = [];
  const reader = state.ItemReader;
  if (reader && reader.Resource !== ITEM_READER) problems.push(`${name}: ItemReader ${reader.Resource}`);
  const inputType = reader?.ReaderConfig?.InputType ?? "JSON";
  if (reader && !["JSON", "CSV"].includes(inputType)) problems.push(`${name}: ItemReader InputType ${inputType}`);
  const writer = state.ResultWriter;
  if (writer && writer.Resource !== RESULT_WRITER) problems.push(`${name}: ResultWriter ${writer.Resource}`);
  if (writer?.WriterConfig) problems.push(`${name}: ResultWriter WriterConfig`);
  return problems;
}

/** The Task that stands in for a Distributed Map state: its Parameters let
 * the interpreter itself evaluate every path and intrinsic the Map's fields
 * hold, against the Map's effective input, and hand them to the handler. */
export function asTask(state) {
  const parameters = { "input.$": "$", "context.$": "$$" };
  if (state.ItemReader) {
    parameters.reader = state.ItemReader.Parameters ?? {};
    const maxItemsPath = state.ItemReader.ReaderConfig?.MaxItemsPath;
    if (maxItemsPath) parameters["max_items.$"] = maxItemsPath;
  } else {
    parameters["items.$"] = state.ItemsPath ?? "$";
  }
  if (state.ResultWriter) parameters.writer = state.ResultWriter.Parameters ?? {};
  const paths = {
    MaxConcurrencyPath: "max_concurrency",
    ToleratedFailurePercentagePath: "tolerated_failure_percentage",
    ToleratedFailureCountPath: "tolerated_failure_count",
  };
  for (const [field, key] of Object.entries(paths)) if (state[field] !== undefined) parameters[`${key}.$`] = state[field];
  const batcher = state.ItemBatcher;
  if (batcher?.BatchInput !== undefined) parameters.batch_input = batcher.BatchInput;
  if (batcher?.MaxItemsPerBatchPath) parameters["max_items_per_batch.$"] = batcher.MaxItemsPerBatchPath;
  if (batcher?.MaxInputBytesPerBatchPath) parameters["max_bytes_per_batch.$"] = batcher.MaxInputBytesPerBatchPath;
  // A Map Run has no timeout of its own, but the interpreter gives a Task
  // 60 s by default: the longest a Node timer waits (24.8 days) instead.
  const task = { Type: "Task", Resource: SIMULATED_RESOURCE, Parameters: parameters, TimeoutSeconds: 2147483 };
  for (const field of ["Comment", "InputPath", "ResultSelector", "ResultPath", "OutputPath", "Retry", "Catch", "Next", "End"]) {
    if (field in state) task[field] = state[field];
  }
  return task;
}

/** The path of `key` in the folder that stands for `bucket`. */
function objectPath(buckets, bucket, key, errorName) {
  const folder = buckets?.[bucket];
  if (!folder) throw stateError(errorName, `no local folder for bucket ${JSON.stringify(bucket)} (the job's "buckets" names ${Object.keys(buckets ?? {}).join(", ") || "none"})`);
  const path = normalize(join(folder, key));
  if (!path.startsWith(normalize(folder) + sep)) throw stateError(errorName, `key ${JSON.stringify(key)} leaves bucket ${bucket}`);
  return path;
}

/** One CSV record per line, RFC 4180 quoting (a quoted field may hold commas,
 * doubled quotes and line breaks). */
function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') (field += '"'), i++;
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") row.push(field), (field = "");
    else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      row.push(field), rows.push(row), (row = []), (field = "");
    } else field += c;
  }
  if (field !== "" || row.length > 0) row.push(field), rows.push(row);
  return rows;
}

/** The items of an object: a JSON array, or CSV rows as {header: value}. */
function parseItems(text, readerConfig, where) {
  const inputType = readerConfig?.InputType ?? "JSON";
  if (inputType === "JSON") {
    let items;
    try {
      items = JSON.parse(text);
    } catch (e) {
      throw stateError("States.ItemReaderFailed", `${where} is not JSON: ${e.message}`);
    }
    if (!Array.isArray(items)) throw stateError("States.ItemReaderFailed", `${where} holds JSON but not an array`);
    return items;
  }
  const rows = parseCsv(text);
  const headers = readerConfig.CSVHeaderLocation === "GIVEN" ? readerConfig.CSVHeaders : rows.shift();
  if (!Array.isArray(headers)) throw stateError("States.ItemReaderFailed", `${where}: no CSV headers (CSVHeaderLocation FIRST_ROW or GIVEN with CSVHeaders)`);
  return rows.map((cells) => Object.fromEntries(headers.map((h, i) => [h, cells[i] ?? ""])));
}

/** Groups items as ItemBatcher does: greedily, each batch within the item
 * and byte limits (the bytes of the child's whole input). */
function batchItems(items, batcher, payload) {
  const maxItems = payload.max_items_per_batch ?? batcher.MaxItemsPerBatch ?? Infinity;
  const maxBytes = payload.max_bytes_per_batch ?? batcher.MaxInputBytesPerBatch ?? 256 * 1024;
  const batchInput = payload.batch_input;
  const inputOf = (batch) => (batchInput === undefined ? { Items: batch } : { BatchInput: batchInput, Items: batch });
  const batches = [];
  let current = [];
  for (const item of items) {
    const candidate = [...current, item];
    const bytes = Buffer.byteLength(JSON.stringify(inputOf(candidate)));
    if (current.length > 0 && (candidate.length > maxItems || bytes > maxBytes)) {
      batches.push(current);
      current = [item];
    } else {
      current = candidate;
    }
  }
  if (current.length > 0) batches.push(current);
  return batches.map((batch) => ({ input: inputOf(batch), items: batch.length }));
}

/** Whether failures exceed the tolerance (AWS: failed over all items,
 * exceeded when strictly more; with neither setting, any failure). */
function exceedsTolerance(failedItems, totalItems, percentage, count) {
  if (percentage === undefined && count === undefined) return failedItems > 0;
  if (percentage !== undefined && (failedItems * 100) / totalItems > percentage) return true;
  return count !== undefined && failedItems > count;
}

/** The tolerance in words, for the failure's cause. */
function tolerance({ percentage, count }) {
  if (percentage === undefined && count === undefined) return "the default (no failure)";
  const parts = [];
  if (percentage !== undefined) parts.push(`ToleratedFailurePercentage ${percentage}`);
  if (count !== undefined) parts.push(`ToleratedFailureCount ${count}`);
  return parts.join(" or ");
}

/** `arn:aws:states:<region>:<account>:execution:<machine>:<name>` → parts. */
function executionParts(executionArn) {
  const match = /^arn:aws:states:([^:]*):([^:]*):execution:(.+):([^:]+)$/.exec(executionArn ?? "");
  if (!match) throw stateError("States.Runtime", `cannot read the execution ARN ${JSON.stringify(executionArn)}`);
  const [, region, account, machine] = match;
  return { region, account, machine };
}

export class DistributedMaps {
  /** `StateMachine`: the interpreter's class; `runOptions`: the overrides
   * the parent runs with (its Task handlers, retry intervals); `buckets`:
   * bucket name → folder; `collect(eventLogs)`: the path events of an
   * execution; `mapLabel`: the child input field that names it; `maxParallel`:
   * children at once on this machine; `mapRuns`: the result's record. */
  constructor({ StateMachine, runOptions, buckets, collect, mapLabel, maxParallel, mapRuns }) {
    Object.assign(this, { StateMachine, runOptions, buckets, collect, mapLabel, maxParallel, mapRuns });
  }

  /** Runs the Map Run of state `name` (its definition `spec`) on the Task's
   * evaluated parameters `payload`. */
  async run(name, spec, payload) {
    const mapRun = this.newMapRun(name, spec, payload);
    this.mapRuns.push(mapRun.record);
    const items = spec.ItemReader ? this.readItems(spec.ItemReader, payload) : payload.items;
    if (!Array.isArray(items)) throw stateError("States.Runtime", `${name}: ItemsPath does not select an array`);
    const selected = await this.select(spec, items, payload);
    const children = spec.ItemBatcher
      ? batchItems(selected, spec.ItemBatcher, payload)
      : selected.map((item) => ({ input: item, items: 1 }));
    const limits = {
      concurrency: payload.max_concurrency ?? spec.MaxConcurrency ?? 0,
      percentage: payload.tolerated_failure_percentage ?? spec.ToleratedFailurePercentage,
      count: payload.tolerated_failure_count ?? spec.ToleratedFailureCount,
      items: items.length,
    };
    Object.assign(mapRun.record, {
      item_count: items.length,
      max_concurrency: limits.concurrency,
      tolerated_failure_percentage: limits.percentage ?? null,
      tolerated_failure_count: limits.count ?? null,
    });
    const results = await this.runChildren(spec, mapRun, children, limits);
    if (mapRun.record.status === "FAILED") {
      throw stateError("States.ExceedToleratedFailureThreshold", mapRun.record.cause);
    }
    if (spec.ResultWriter) return this.writeResults(mapRun, results, payload.writer);
    return results.map((r) => (r.Status === "SUCCEEDED" ? JSON.parse(r.Output) : r));
  }

  /** The Map Run's names: its ARN, its id, and its children's ARN prefix. */
  newMapRun(name, spec, payload) {
    const { region, account, machine } = executionParts(payload.context?.Execution?.Id);
    const id = randomUUID();
    const label = spec.Label ?? name;
    const arn = `arn:aws:states:${region}:${account}:mapRun:${machine}/${label}:${id}`;
    return {
      id,
      spec,
      context: payload.context,
      childPrefix: `arn:aws:states:${region}:${account}:execution:${machine}/${label}`,
      childMachineArn: `arn:aws:states:${region}:${account}:stateMachine:${machine}/${label}`,
      record: { state: name, map_run_arn: arn, status: "RUNNING", children: [] },
    };
  }

  /** The items the ItemReader names, from the bucket's folder. */
  readItems(reader, payload) {
    const { Bucket: bucket, Key: key } = payload.reader;
    const path = objectPath(this.buckets, bucket, key, "States.ItemReaderFailed");
    if (!existsSync(path)) throw stateError("States.ItemReaderFailed", `s3://${bucket}/${key} does not exist (${path})`);
    const items = parseItems(readFileSync(path, "utf8"), reader.ReaderConfig, `s3://${bucket}/${key}`);
    const maxItems = payload.max_items ?? reader.ReaderConfig?.MaxItems;
    return maxItems ? items.slice(0, maxItems) : items;
  }

  /** ItemSelector (or the older Parameters) applied to each item by the
   * interpreter's own inline Map, so paths and intrinsics mean what they
   * mean elsewhere: `$` is the Map's input, `$$.Map.Item` the item, and
   * `$$.Execution` the parent's. */
  async select(spec, items, payload) {
    const selector = spec.ItemSelector ?? spec.Parameters;
    if (!selector) return items;
    const selecting = new this.StateMachine(
      {
        StartAt: "Select",
        States: {
          Select: {
            Type: "Map",
            InputPath: "$$.SimulatedMapInput",
            ItemsPath: "$$.SimulatedItems",
            ItemSelector: selector,
            ItemProcessor: { StartAt: "Item", States: { Item: { Type: "Pass", End: true } } },
            End: true,
          },
        },
      },
      { validationOptions: { noValidate: true } },
    );
    const context = { ...payload.context, SimulatedMapInput: payload.input, SimulatedItems: items };
    try {
      return await selecting.run(payload.context.Execution.Input, { context }).result;
    } catch (error) {
      const cause = error.cause ?? error;
      throw stateError(cause.name ?? "States.Runtime", `ItemSelector: ${cause.message}`);
    }
  }

  /** Runs the children within the concurrency, stopping when the failures
   * exceed the tolerance; returns their result records in item order. */
  async runChildren(spec, mapRun, children, limits) {
    const processor = new this.StateMachine(spec.ItemProcessor, { validationOptions: { noValidate: true } });
    const concurrency = Math.min(limits.concurrency || AWS_MAX_CONCURRENCY, this.maxParallel ?? 8);
    const results = new Array(children.length);
    let failedItems = 0;
    const work = children.map((child, index) => async () => {
      results[index] = await this.runChild(processor, mapRun, child.input, index);
      if (results[index].Status !== "SUCCEEDED") failedItems += child.items;
      if (exceedsTolerance(failedItems, limits.items, limits.percentage, limits.count)) {
        mapRun.record.status = "FAILED";
        mapRun.record.cause = `${failedItems} of ${limits.items} items failed, more than ${tolerance(limits)} tolerates`;
      }
    });
    await pool(concurrency, work, () => mapRun.record.status === "FAILED");
    if (mapRun.record.status !== "FAILED") mapRun.record.status = "SUCCEEDED";
    mapRun.record.children.sort((a, b) => a.index - b.index);
    return results.filter(Boolean);
  }

  /** One child execution: the ItemProcessor run as its own execution (its
   * own $$.Execution), recorded for the path and the ResultWriter. */
  async runChild(processor, mapRun, input, index) {
    const name = randomUUID();
    const executionArn = `${mapRun.childPrefix}:${name}`;
    const startDate = new Date().toISOString();
    const { Execution: _parent, ...inherited } = mapRun.context;
    const execution = processor.run(input, {
      ...this.runOptions,
      context: { ...inherited, Execution: { Id: executionArn, Name: name } },
    });
    const label = typeof input?.[this.mapLabel] === "string" ? input[this.mapLabel] : String(index);
    const events = this.collect(execution.eventLogs);
    const result = { ExecutionArn: executionArn, Input: JSON.stringify(input), InputDetails: { Included: true }, Name: name };
    try {
      const output = await execution.result;
      Object.assign(result, { Output: JSON.stringify(output), OutputDetails: { Included: true }, Status: "SUCCEEDED" });
    } catch (error) {
      const cause = error.cause ?? error;
      Object.assign(result, { Error: cause.name ?? error.name, Cause: String(cause.message ?? error.message), Status: "FAILED" });
    }
    Object.assign(result, {
      RedriveCount: 0,
      RedriveStatus: "NOT_REDRIVABLE",
      StartDate: startDate,
      StateMachineArn: mapRun.childMachineArn,
      StopDate: new Date().toISOString(),
    });
    mapRun.record.children.push({
      index,
      label,
      name,
      input,
      status: result.Status,
      error: result.Error ?? null,
      cause: result.Cause ?? null,
      events: await events,
    });
    return result;
  }

  /** The export: one file per status that has executions, then the manifest. */
  writeResults(mapRun, results, writer) {
    const bucket = writer.Bucket;
    const prefix = writer.Prefix ? (writer.Prefix.endsWith("/") ? writer.Prefix : `${writer.Prefix}/`) : "";
    const folder = `${prefix}${mapRun.id}/`;
    const resultFiles = { FAILED: [], PENDING: [], SUCCEEDED: [] };
    for (const status of ["SUCCEEDED", "FAILED"]) {
      const records = results.filter((r) => (status === "SUCCEEDED" ? r.Status === "SUCCEEDED" : r.Status !== "SUCCEEDED"));
      if (records.length === 0) continue;
      const key = `${folder}${status}_0.json`;
      resultFiles[status].push({ Key: key, Size: this.put(bucket, key, JSON.stringify(records)) });
    }
    const manifestKey = `${folder}manifest.json`;
    const manifest = { DestinationBucket: bucket, MapRunArn: mapRun.record.map_run_arn, ResultFiles: resultFiles };
    this.put(bucket, manifestKey, JSON.stringify(manifest));
    mapRun.record.result_writer = { bucket, key: manifestKey };
    return { MapRunArn: mapRun.record.map_run_arn, ResultWriterDetails: { Bucket: bucket, Key: manifestKey } };
  }

  /** s3:putObject into the bucket's folder; returns the object's size. */
  put(bucket, key, text) {
    const path = objectPath(this.buckets, bucket, key, "States.ResultWriterFailed");
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
    return statSync(path).size;
  }
}
