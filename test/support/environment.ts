/**
 * Integration tests need real parts (root, systemd-journald, nftables, python3-grpcio). On a laptop
 * without them they skip with the reason; in CI (CI=true) a missing part is a failure, never a skip.
 */
import { execFileSync } from "node:child_process"
import { existsSync } from "node:fs"
import { describe, it } from "vitest"

export type Requirement = "root" | "journald" | "nftables" | "python-grpc" | "kubectl"

const probes: Record<Requirement, () => string | undefined> = {
  root: () => (process.getuid?.() === 0 ? undefined : "not running as root"),
  // the socket file outlives a dead journald, and journalctl reads the files without it: ask for the process
  journald: () =>
    existsSync("/run/systemd/journal/socket") && commandWorks("pgrep", ["-x", "systemd-journal"]) &&
      commandWorks("journalctl", ["-n", "0", "-q"])
      ? undefined
      : "systemd-journald is not running (start it with scripts/start-journald.sh)",
  nftables: () => (commandWorks("nft", ["list", "tables"]) ? undefined : "nft is missing or not permitted"),
  "python-grpc": () =>
    commandWorks("/usr/bin/python3", ["-c", "import grpc, grpc_tools"])
      ? undefined
      : "/usr/bin/python3 lacks grpcio/grpc_tools (apt-get install python3-grpcio python3-grpc-tools)",
  kubectl: () => (commandWorks("kubectl", ["version", "--client"]) ? undefined : "kubectl is not installed")
}

function commandWorks(command: string, args: ReadonlyArray<string>): boolean {
  try {
    execFileSync(command, args, { stdio: "ignore", timeout: 10_000 })
    return true
  } catch {
    return false
  }
}

const cache = new Map<Requirement, string | undefined>()

export const missing = (requirements: ReadonlyArray<Requirement>): Array<string> =>
  requirements.flatMap((requirement) => {
    if (!cache.has(requirement)) cache.set(requirement, probes[requirement]())
    const reason = cache.get(requirement)
    return reason === undefined ? [] : [`${requirement}: ${reason}`]
  })

export const inCI = process.env.CI === "true" || process.env.CI === "1"

/**
 * `describe` for a suite that needs real parts: runs when they are there, skips with the reason
 * when they are not, and fails in CI when they are not.
 */
export const describeWith = (
  requirements: ReadonlyArray<Requirement>,
  name: string,
  body: () => void
): void => {
  const reasons = missing(requirements)
  if (reasons.length === 0) {
    describe(name, body)
  } else if (inCI) {
    describe(name, () => {
      it("has the real parts it needs in CI", () => {
        throw new Error(`missing in CI: ${reasons.join("; ")}`)
      })
    })
  } else {
    describe.skip(`${name} (skipped: ${reasons.join("; ")})`, body)
  }
}
