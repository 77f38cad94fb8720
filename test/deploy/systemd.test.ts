/**
 * deploy/systemd: the client's unit passes `systemd-analyze verify` (with its ExecStart pointed at
 * a stand-in executable, since /usr/local/bin/droptailer is not installed here) and
 * `systemd-analyze security --offline`, and carries the settings the firewall hosts rely on.
 * systemd-analyze comes with Debian's systemd package, which .ci/run installs.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { existsSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { inCI } from "../support/environment.ts"
import { repoPath, run } from "./repo.ts"

const unitPath = repoPath("deploy", "systemd", "droptailer-client.service")
const envExamplePath = repoPath("deploy", "systemd", "droptailer-client.env.example")
const installedPath = "/usr/local/bin/droptailer"

/** The unit's settings: section → key → values in order (a key may repeat). */
const parseUnit = (text: string): Map<string, Map<string, Array<string>>> => {
  const sections = new Map<string, Map<string, Array<string>>>()
  let current: Map<string, Array<string>> | undefined
  for (const raw of text.split("\n")) {
    const line = raw.trim()
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue
    const section = /^\[(.+)\]$/.exec(line)
    if (section !== null) {
      current = new Map()
      sections.set(section[1] ?? "", current)
      continue
    }
    const [key = "", ...value] = line.split("=")
    const values = current?.get(key.trim()) ?? []
    values.push(value.join("=").trim())
    current?.set(key.trim(), values)
  }
  return sections
}

/** systemd-analyze is there, or the reason it is not. */
const analyzeMissing = ((): string | undefined => {
  try {
    execFileSync("systemd-analyze", ["--version"], { stdio: "ignore", timeout: 10_000 })
    return undefined
  } catch {
    return "systemd-analyze is not installed (Debian package systemd)"
  }
})()

/** Like describeWith in test/support/environment.ts: skip on a laptop without it, fail in CI. */
const describeWithSystemdAnalyze = (name: string, body: () => void): void => {
  if (analyzeMissing === undefined) describe(name, body)
  else if (inCI) describe(name, () => it("has systemd-analyze in CI", () => expect.fail(`missing in CI: ${analyzeMissing}`)))
  else describe.skip(`${name} (skipped: ${analyzeMissing})`, body)
}

describeWithSystemdAnalyze("deploy/systemd/droptailer-client.service with systemd-analyze", () => {
  let folder = ""
  let stand = ""

  /** The unit as it would be installed, with ExecStart pointing at the stand-in executable. */
  const installable = async (text: string, name = "droptailer-client.service"): Promise<string> => {
    const path = join(folder, name)
    await writeFile(path, text.replaceAll(installedPath, stand))
    return path
  }

  /** What systemd-analyze verify says about the unit: the exit code and the lines about it. */
  const verify = async (path: string) => {
    const result = await run("systemd-analyze", ["verify", "--man=no", path])
    const name = path.split("/").at(-1) ?? path
    const lines = `${result.stdout}\n${result.stderr}`.split("\n").filter((line) => line.includes(name) || line.includes(folder))
    return { code: result.code, lines, all: `${result.stdout}${result.stderr}` }
  }

  beforeAll(async () => {
    folder = await mkdtemp(join(tmpdir(), "droptailer-systemd-"))
    stand = join(folder, "droptailer")
    await writeFile(stand, "#!/bin/sh\nexit 0\n")
    await chmod(stand, 0o755)
  })

  afterAll(async () => {
    if (folder !== "") await rm(folder, { recursive: true, force: true })
  })

  it(`starts ${installedPath} client, the path docs/DEPLOY.md installs`, async () => {
    const unit = parseUnit(await readFile(unitPath, "utf8"))
    expect(unit.get("Service")?.get("ExecStart")).toEqual([`${installedPath} client`])
    expect(readFileSync(repoPath("docs", "DEPLOY.md"), "utf8")).toContain(installedPath)
  })

  it("passes systemd-analyze verify without a word about the unit", async () => {
    const result = await verify(await installable(await readFile(unitPath, "utf8")))
    expect(result.lines, result.all).toEqual([])
    expect(result.code, result.all).toBe(0)
  })

  it("verify would catch a misspelt key, a bad value and a missing program (control)", async () => {
    const text = (await readFile(unitPath, "utf8"))
      .replace(/^RestartSec=/m, "RestartSecs=")
      .replace(/^ProtectSystem=strict$/m, "ProtectSystem=strictest")
    const misspelt = await verify(await installable(text, "misspelt.service"))
    expect(misspelt.lines.join("\n")).toContain("Unknown key 'RestartSecs'")
    expect(misspelt.lines.join("\n")).toContain("strictest")
    const withoutProgram = (await readFile(unitPath, "utf8")).replace(/^ExecStart=\S+/m, "ExecStart=/nonexistent/droptailer")
    const missing = await verify(await installable(withoutProgram, "missing.service"))
    expect(missing.lines.join("\n")).toContain("/nonexistent/droptailer")
    expect(missing.code).not.toBe(0)
  })

  it("is hardened: systemd-analyze security --offline rates it below 2.0 (OK)", async () => {
    const path = await installable(await readFile(unitPath, "utf8"))
    const result = await run("systemd-analyze", ["security", "--offline=yes", "--threshold=20", "--no-pager", path])
    const level = /Overall exposure level for [^:]+: (\d+\.\d+)/.exec(result.stdout)?.[1]
    expect(level, result.stdout + result.stderr).toBeDefined()
    expect(Number(level)).toBeLessThanOrEqual(2.0)
    expect(result.code, result.stdout + result.stderr).toBe(0)
  })
})

describe("deploy/systemd/droptailer-client.service settings", () => {
  const unit = parseUnit(readFileSync(unitPath, "utf8"))
  const service = unit.get("Service") ?? new Map<string, Array<string>>()
  const one = (key: string) => service.get(key)?.at(-1)

  it("restarts forever and keeps its cursor in /var/lib/droptailer", () => {
    expect(one("Restart")).toBe("always")
    expect(one("RestartSec")).toMatch(/^\d+(s|ms)?$/)
    expect(unit.get("Unit")?.get("StartLimitIntervalSec")).toEqual(["0"])
    expect(one("StateDirectory")).toBe("droptailer")
    expect(service.get("Environment")).toContain("DROPTAILER_STATE_DIRECTORY=%S/droptailer")
    expect(service.get("EnvironmentFile")).toEqual(["-/etc/default/droptailer-client"])
    expect(unit.get("Install")?.get("WantedBy")).toEqual(["multi-user.target"])
  })

  it("reads the journal as a dynamic user in group systemd-journal, the certificates as credentials", () => {
    expect(one("DynamicUser")).toBe("yes")
    expect(one("SupplementaryGroups")).toBe("systemd-journal")
    // PrivateUsers= would hide the host's systemd-journal group from the service.
    expect(service.has("PrivateUsers")).toBe(false)
    expect(service.get("LoadCredential")).toEqual([
      "ca.crt:/etc/droptailer-client/ca.crt",
      "tls.crt:/etc/droptailer-client/tls.crt",
      "tls.key:/etc/droptailer-client/tls.key"
    ])
    expect(service.get("Environment")).toEqual(
      expect.arrayContaining([
        "DROPTAILER_CA_CERTIFICATE=%d/ca.crt",
        "DROPTAILER_CLIENT_CERTIFICATE=%d/tls.crt",
        "DROPTAILER_CLIENT_KEY=%d/tls.key"
      ])
    )
  })

  it("is hardened, but leaves V8 its JIT", () => {
    for (const [key, value] of [
      ["ProtectSystem", "strict"],
      ["ProtectHome", "yes"],
      ["PrivateTmp", "yes"],
      ["NoNewPrivileges", "yes"],
      ["CapabilityBoundingSet", ""],
      ["RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"],
      ["SystemCallArchitectures", "native"]
    ] as const) {
      expect([key, one(key)]).toEqual([key, value])
    }
    expect(service.get("SystemCallFilter")?.[0]).toBe("@system-service")
    expect(one("MemoryDenyWriteExecute") ?? "no").toBe("no")
  })

  it("has an example environment file with only DROPTAILER_* settings and no certificate paths", () => {
    expect(existsSync(envExamplePath)).toBe(true)
    const assignments = readFileSync(envExamplePath, "utf8")
      .split("\n")
      .map((line) => /^#?([A-Z][A-Z0-9_]*)=(.*)$/.exec(line.trim()))
      .filter((match) => match !== null)
    const active = assignments.filter((match) => !match[0].startsWith("#")).map((match) => match[1])
    expect(active).toEqual(["DROPTAILER_SERVER_ADDRESS"])
    for (const match of assignments) expect(match[1]).toMatch(/^DROPTAILER_/)
    expect(assignments.map((match) => match[1])).not.toEqual(expect.arrayContaining(["DROPTAILER_CLIENT_KEY"]))
  })
})
