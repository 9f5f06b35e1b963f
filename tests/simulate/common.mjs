// What the runner's emulations share (tests/simulate/runner.mjs, batch.mjs,
// distributed_map.mjs): the errors Retry and Catch match, running a local
// program with its output kept, and a bounded pool of concurrent work.

import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** An error whose name is the ASL error name Retry and Catch match. */
export function stateError(name, cause) {
  const error = new Error(cause);
  error.name = name;
  return error;
}

/** The last lines of a program's output, for an error message. */
export const tail = (text) => text.trim().split("\n").slice(-15).join("\n");

/** A function that runs a program with `stdin`, collecting stdout and
 * stderr, which are also kept in `logDir` as NNN-<label>.log for a look
 * after the run. `onOutput(all output so far, child)` sees it as it comes. */
export function programRunner(logDir) {
  let programs = 0;
  return function run(label, command, env, stdin, onOutput) {
    const log = logDir ? join(logDir, `${String(++programs).padStart(3, "0")}-${label}.log`) : null;
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
          mkdirSync(logDir, { recursive: true });
          writeFileSync(log, `$ ${command.join(" ")}\n---- stdout\n${stdout}---- stderr\n${stderr}`);
        }
        resolve({ code, signal, stdout, stderr });
      });
      child.stdin.on("error", () => {}); // a program may exit without reading stdin
      child.stdin.end(stdin ?? "");
    });
  };
}

/** Runs `work` (functions returning promises) at most `limit` at a time, in
 * order; stops starting new work once `stop()` is true. Resolves when
 * everything started has ended. */
export async function pool(limit, work, stop = () => false) {
  let next = 0;
  const worker = async () => {
    while (next < work.length && !stop()) {
      const i = next++;
      await work[i]();
    }
  };
  const workers = Math.max(1, Math.min(limit, work.length));
  await Promise.all(Array.from({ length: workers }, worker));
}
