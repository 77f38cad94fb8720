/**
 * A small Dockerfile parser and linter for this project's two images. No Docker engine runs here
 * and hadolint is packaged neither by Debian nor on npm, so the rules hadolint would apply to
 * these files, and the project's own packaging rules, are checked here.
 */
import { existsSync } from "node:fs"
import { join, posix } from "node:path"

export interface Instruction {
  readonly keyword: string
  readonly args: string
  readonly line: number
}

export interface Stage {
  readonly image: string
  readonly name: string | undefined
  readonly instructions: ReadonlyArray<Instruction>
}

export interface Dockerfile {
  readonly preamble: ReadonlyArray<Instruction>
  readonly stages: ReadonlyArray<Stage>
  /** All comment text, one comment line per line. */
  readonly comments: string
  readonly problems: ReadonlyArray<string>
}

const keywords = new Set([
  "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
  "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"
])

/** Splits a Dockerfile into instructions (continuation lines joined, comments set aside) and stages. */
export const parseDockerfile = (text: string): Dockerfile => {
  const problems: Array<string> = []
  const comments: Array<string> = []
  const instructions: Array<Instruction> = []
  const lines = text.split("\n")
  let pending: { text: string; line: number } | undefined
  lines.forEach((raw, index) => {
    const trimmed = raw.trim()
    if (trimmed.startsWith("#")) {
      comments.push(trimmed.replace(/^#\s?/, ""))
      if (/^#\s*escape\s*=/i.test(trimmed) && pending === undefined && instructions.length === 0) {
        problems.push(`line ${index + 1}: the escape directive is not supported by this check`)
      }
      return
    }
    if (trimmed === "" && pending === undefined) return
    const continued = /\\\s*$/.test(raw)
    const part = raw.replace(/\\\s*$/, "")
    pending = pending === undefined ? { text: part, line: index + 1 } : { text: `${pending.text} ${part.trim()}`, line: pending.line }
    if (!continued) {
      const match = /^\s*(\S+)\s*(.*)$/.exec(pending.text)
      if (match !== null) {
        const keyword = (match[1] ?? "").toUpperCase()
        const args = (match[2] ?? "").replace(/\s+/g, " ").trim()
        if (!keywords.has(keyword)) problems.push(`line ${pending.line}: unknown instruction ${match[1]}`)
        if (/<<-?\s*["']?\w+/.test(args) && (keyword === "RUN" || keyword === "COPY")) {
          problems.push(`line ${pending.line}: heredocs are not supported by this check`)
        }
        instructions.push({ keyword, args, line: pending.line })
      }
      pending = undefined
    }
  })
  if (pending !== undefined) problems.push(`line ${pending.line}: the file ends inside a continued instruction`)

  const preamble: Array<Instruction> = []
  const stages: Array<{ image: string; name: string | undefined; instructions: Array<Instruction> }> = []
  for (const instruction of instructions) {
    if (instruction.keyword === "FROM") {
      const words = instruction.args.split(" ").filter((word) => !word.startsWith("--"))
      const image = words[0] ?? ""
      const name = words[1]?.toUpperCase() === "AS" ? words[2] : undefined
      if (words.length !== 1 && !(words.length === 3 && name !== undefined)) {
        problems.push(`line ${instruction.line}: FROM expects "image [AS name]"`)
      }
      stages.push({ image, name, instructions: [] })
    } else if (stages.length === 0) {
      if (instruction.keyword !== "ARG") problems.push(`line ${instruction.line}: ${instruction.keyword} before the first FROM`)
      preamble.push(instruction)
    } else {
      stages.at(-1)?.instructions.push(instruction)
    }
  }
  return { preamble, stages, comments: comments.join("\n"), problems }
}

/** The words of a JSON-array (exec form) argument, or undefined for the shell form or bad JSON. */
export const execForm = (args: string): ReadonlyArray<string> | undefined => {
  if (!args.startsWith("[")) return undefined
  try {
    const parsed: unknown = JSON.parse(args)
    return Array.isArray(parsed) && parsed.every((word) => typeof word === "string") ? parsed : undefined
  } catch {
    return undefined
  }
}

/** The flags (`--from=x`) and the words of a COPY or ADD, JSON form or not. */
const copyArguments = (args: string): { readonly flags: Map<string, string>; readonly words: ReadonlyArray<string> } => {
  const flags = new Map<string, string>()
  const rest: Array<string> = []
  const words = args.split(" ")
  let index = 0
  for (; index < words.length && (words[index] ?? "").startsWith("--"); index++) {
    const [flag = "", value = ""] = (words[index] ?? "").slice(2).split("=", 2)
    flags.set(flag, value)
  }
  const remainder = words.slice(index).join(" ")
  rest.push(...(execForm(remainder) ?? remainder.split(" ").filter((word) => word !== "")))
  return { flags, words: rest }
}

/** Whether a .dockerignore pattern (`*` within a path segment) covers a context path or its parent. */
const ignoreMatches = (pattern: string, path: string): boolean => {
  const clean = posix.normalize(pattern.replace(/^\//, "")).replace(/\/$/, "")
  if (clean === "*" || clean === "**") return true
  const regex = new RegExp(
    "^" + clean.split("*").map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join("[^/]*") + "(/.*)?$"
  )
  return regex.test(path)
}

/** The patterns of a .dockerignore and whether a context path is sent with the build context. */
export const dockerignore = (text: string) => {
  const patterns = text
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"))
  /** Docker's rule: the last matching pattern decides; `!pattern` re-includes. */
  const included = (path: string): boolean => {
    let result = true
    for (const pattern of patterns) {
      const negated = pattern.startsWith("!")
      if (ignoreMatches(negated ? pattern.slice(1) : pattern, path)) result = negated
    }
    return result
  }
  return { patterns, included }
}

export type Role = "server" | "client"

export interface LintContext {
  readonly role: Role
  readonly repoRoot: string
  readonly dockerignore: string
}

/** What the build context may contribute to an image: nothing but the program and its lock file. */
export const contextSources = new Set(["package.json", "package-lock.json", "src", "proto"])

const nodeImage = /^node:24(\.\d+){0,2}-(slim|bookworm-slim|trixie-slim)(@sha256:[0-9a-f]{64})?$/
const distrolessImage = /^gcr\.io\/distroless\/nodejs24-debian1[2-9](:[\w.-]+)?(@sha256:[0-9a-f]{64})?$/

/**
 * The problems of one of the project's Dockerfiles, as hadolint-style messages; none is good.
 * Covers hadolint's DL3000, DL3002, DL3003, DL3004, DL3006, DL3007, DL3009, DL3014, DL3015,
 * DL3020, DL3025, DL3027 and DL4000, and this project's rules: Node 24 images, multi-stage with
 * production dependencies only, only src/, proto/ and package*.json from the context, which the
 * .dockerignore lets through, and an ENTRYPOINT that runs src/main/bin.ts with the image's role.
 */
export const lintDockerfile = (text: string, context: LintContext): Array<string> => {
  const file = parseDockerfile(text)
  const problems = [...file.problems]
  const ignore = dockerignore(context.dockerignore)
  if (file.stages.length < 2) problems.push("not multi-stage: dependencies and runtime belong in separate stages")

  const stageNames = new Set<string>()
  file.stages.forEach((stage, index) => {
    const last = index === file.stages.length - 1
    if (stage.image.includes("$")) problems.push(`FROM ${stage.image}: use a literal image so it can be checked`)
    else if (stageNames.has(stage.image)) {
      // FROM an earlier stage
    } else if (stage.image.endsWith(":latest")) problems.push(`FROM ${stage.image}: DL3007 do not use :latest`)
    else if (!nodeImage.test(stage.image) && !(context.role === "server" && last && distrolessImage.test(stage.image))) {
      problems.push(`FROM ${stage.image}: expected node:24-slim${context.role === "server" ? " or gcr.io/distroless/nodejs24-debian12" : ""}`)
    }
    if (stage.name !== undefined) stageNames.add(stage.name)

    let workdir = "/"
    for (const instruction of stage.instructions) {
      const where = `line ${instruction.line}`
      switch (instruction.keyword) {
        case "WORKDIR":
          if (!instruction.args.startsWith("/")) problems.push(`${where}: DL3000 WORKDIR must be absolute`)
          workdir = posix.resolve(workdir, instruction.args)
          break
        case "ADD":
          problems.push(`${where}: DL3020 use COPY instead of ADD`)
          break
        case "RUN": {
          const run = instruction.args
          if (/(^|[;&|]\s*)cd\s/.test(run)) problems.push(`${where}: DL3003 use WORKDIR instead of cd`)
          if (/\bsudo\b/.test(run)) problems.push(`${where}: DL3004 do not use sudo`)
          if (/(^|[;&|]\s*)apt\s/.test(run)) problems.push(`${where}: DL3027 use apt-get, not apt`)
          if (/\bapt-get\s+(-\S+\s+)*install\b/.test(run)) {
            if (!/\binstall\b.*\s(-y|--yes|--assume-yes)\b/.test(run)) problems.push(`${where}: DL3014 apt-get install needs -y`)
            if (!/--no-install-recommends/.test(run)) problems.push(`${where}: DL3015 apt-get install needs --no-install-recommends`)
            if (!/rm -rf \/var\/lib\/apt\/lists\/\*/.test(run)) problems.push(`${where}: DL3009 remove /var/lib/apt/lists after apt-get install`)
            if (!last) problems.push(`${where}: install Debian packages in the runtime stage`)
          }
          if (/\bnpm\s+(install|i|add)\b/.test(run)) problems.push(`${where}: use npm ci with the lock file, not npm install`)
          if (/\bnpm\s+ci\b/.test(run) && !/--omit=dev\b/.test(run)) problems.push(`${where}: npm ci without --omit=dev`)
          break
        }
        case "COPY": {
          const { flags, words } = copyArguments(instruction.args)
          const sources = words.slice(0, -1)
          const from = flags.get("from")
          if (sources.length === 0) problems.push(`${where}: COPY needs a source and a destination`)
          if (from !== undefined) {
            if (!stageNames.has(from) || from === stage.name) problems.push(`${where}: COPY --from=${from} names no earlier stage`)
            break
          }
          for (const source of sources) {
            const path = posix.normalize(source).replace(/\/$/, "")
            if (!contextSources.has(path)) problems.push(`${where}: copies ${source}; the images take only src/, proto/ and package*.json from the context`)
            if (!existsSync(join(context.repoRoot, path))) problems.push(`${where}: COPY source ${source} does not exist`)
            if (!ignore.included(path)) problems.push(`${where}: COPY source ${source} is excluded by .dockerignore`)
          }
          break
        }
        case "CMD":
        case "ENTRYPOINT":
          if (execForm(instruction.args) === undefined) problems.push(`${where}: DL3025 use the JSON (exec) form for ${instruction.keyword}`)
          break
        case "MAINTAINER":
          problems.push(`${where}: DL4000 MAINTAINER is deprecated`)
          break
      }
    }
  })

  const all = file.stages.flatMap((stage) => stage.instructions)
  if (!all.some((instruction) => instruction.keyword === "RUN" && /\bnpm\s+ci\b.*--omit=dev\b/.test(instruction.args))) {
    problems.push("no RUN npm ci --omit=dev: the image must install production dependencies only")
  }

  const runtime = file.stages.at(-1)
  if (runtime !== undefined) {
    const find = (keyword: string) => runtime.instructions.filter((instruction) => instruction.keyword === keyword)
    const workdir = find("WORKDIR").at(-1)?.args ?? "/"
    const copied = new Map<string, string>()
    for (const instruction of find("COPY")) {
      const { flags, words } = copyArguments(instruction.args)
      const destination = posix.resolve(workdir, words.at(-1) ?? "")
      for (const source of words.slice(0, -1)) {
        const name = posix.normalize(source).replace(/\/$/, "")
        const into = words.length > 2 || (words.at(-1) ?? "").endsWith("/") ? posix.join(destination, posix.basename(name)) : destination
        copied.set(flags.has("from") ? `${flags.get("from")}:${name}` : name, into)
      }
    }
    for (const needed of ["src", "proto", "package.json"]) {
      if (copied.get(needed) !== posix.join(workdir, needed)) problems.push(`runtime stage: ${needed} is not copied to ${posix.join(workdir, needed)}`)
    }
    const installsProduction = (name: string) =>
      file.stages.some((stage) =>
        stage.name === name &&
        stage.instructions.some((instruction) => instruction.keyword === "RUN" && /\bnpm\s+ci\b.*--omit=dev\b/.test(instruction.args))
      )
    const modules = [...copied.entries()].find(([, into]) => into === posix.join(workdir, "node_modules"))?.[0]
    if (modules === undefined || !modules.includes(":") || !installsProduction(modules.split(":")[0] ?? "")) {
      problems.push("runtime stage: node_modules is not copied from the stage that runs npm ci --omit=dev")
    }

    const entrypoints = find("ENTRYPOINT")
    const entrypoint = execForm(entrypoints.at(-1)?.args ?? "")
    if (entrypoints.length !== 1) problems.push(`runtime stage: expected one ENTRYPOINT, found ${entrypoints.length}`)
    else if (JSON.stringify(entrypoint) !== JSON.stringify(["node", "src/main/bin.ts", context.role])) {
      problems.push(`ENTRYPOINT ${entrypoints[0]?.args}: expected ["node","src/main/bin.ts","${context.role}"]`)
    }
    if (!existsSync(join(context.repoRoot, "src", "main", "bin.ts"))) problems.push("ENTRYPOINT: src/main/bin.ts does not exist")

    const user = find("USER").at(-1)?.args
    const uid = user?.split(":")[0]
    if (context.role === "server") {
      if (user === undefined) problems.push("runtime stage: DL3002 no USER, the server would run as root")
      else if (!/^\d+$/.test(uid ?? "") || uid === "0") problems.push(`USER ${user}: the server needs a numeric non-root uid (runAsNonRoot)`)
    } else {
      if (user === undefined) problems.push("runtime stage: no USER: say which user the client runs as")
      else if ((uid === "root" || uid === "0") && !/why root/i.test(file.comments)) {
        problems.push(`USER ${user}: DL3002 root without a comment that explains why`)
      }
    }

    const exposed = new Set(find("EXPOSE").flatMap((instruction) => instruction.args.split(" ").map((port) => port.replace(/\/tcp$/, ""))))
    const expected = context.role === "server" ? ["50051", "9090"] : ["9091"]
    if ([...exposed].toSorted().join(",") !== [...expected].toSorted().join(",")) {
      problems.push(`EXPOSE ${[...exposed].join(" ")}: expected ${expected.join(" ")}`)
    }
    const labels = find("LABEL").map((instruction) => instruction.args).join(" ")
    if (!labels.includes("org.opencontainers.image.title=")) problems.push("runtime stage: no LABEL org.opencontainers.image.title")

    if (context.role === "client") {
      const installs = find("RUN").map((instruction) => instruction.args).join("\n")
      if (!/\bapt-get\s+(-\S+\s+)*install\b[^&;|]*\ssystemd\b/.test(installs)) problems.push("runtime stage: journalctl needs Debian's systemd package")
      for (const mount of ["/var/log/journal", "/run/log/journal", "/etc/machine-id"]) {
        if (!labels.includes(`${mount}:${mount}:ro`)) problems.push(`LABEL: the journal mount ${mount} is not documented`)
        if (!file.comments.includes(`--volume ${mount}:${mount}:ro`)) problems.push(`comments: the docker run does not mount ${mount} read-only`)
      }
    }
  }
  return problems
}
