/** Paths and small process helpers shared by the deployment tests. */
import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"

/** The repository's root folder. */
export const repoRoot = fileURLToPath(new URL("../../", import.meta.url))

export const repoPath = (...parts: ReadonlyArray<string>): string => [repoRoot.replace(/\/$/, ""), ...parts].join("/")

export interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/**
 * Runs a command without a shell and without blocking the event loop (a test may serve HTTP to it
 * from this process); never rejects, the exit code tells.
 */
export const run = (
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly env?: NodeJS.ProcessEnv; readonly cwd?: string; readonly timeoutMs?: number } = {}
): Promise<Run> =>
  new Promise((resolve) => {
    execFile(
      command,
      [...args],
      {
        env: options.env ?? process.env,
        cwd: options.cwd ?? repoRoot,
        timeout: options.timeoutMs ?? 60_000,
        maxBuffer: 64 * 1024 * 1024,
        encoding: "utf8"
      },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1
        resolve({ code, stdout, stderr: error !== null && stderr === "" ? error.message : stderr })
      }
    )
  })
