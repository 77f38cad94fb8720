/**
 * Checks Prometheus text exposition (format 0.0.4) line by line and reads its samples.
 * https://prometheus.io/docs/instrumenting/exposition_formats/
 */
const metricName = "[a-zA-Z_:][a-zA-Z0-9_:]*"
const labelName = "[a-zA-Z_][a-zA-Z0-9_]*"
const labelValue = String.raw`"(?:[^"\\\n]|\\[\\"n])*"`
const value = String.raw`(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Inf|NaN)`
const sampleLine = new RegExp(
  `^(${metricName})(?:\\{((?:${labelName}=${labelValue})(?:,${labelName}=${labelValue})*,?)?\\})? (${value})(?: -?\\d+)?$`
)
const helpLine = new RegExp(`^# HELP (${metricName})(?: (.*))?$`)
const typeLine = new RegExp(`^# TYPE (${metricName}) (counter|gauge|histogram|summary|untyped)$`)
const labelPair = new RegExp(`(${labelName})=(${labelValue})`, "g")

export interface Sample {
  readonly name: string
  readonly labels: Record<string, string>
  readonly value: number
}

const unescape = (quoted: string): string =>
  quoted.slice(1, -1).replace(/\\(["\\n])/g, (_, c: string) => (c === "n" ? "\n" : c))

const parseValue = (text: string): number =>
  text.endsWith("Inf") ? (text.startsWith("-") ? -Infinity : Infinity) : text === "NaN" ? NaN : Number(text)

/**
 * Parses the exposition text, throwing on the first line that is not a well-formed sample, HELP,
 * TYPE or comment line, on a TYPE given twice or after the metric's samples, and on samples of a
 * family whose TYPE says otherwise (histogram samples must be _bucket/_sum/_count).
 */
export const parsePrometheus = (text: string): Array<Sample> => {
  if (text.length > 0 && !text.endsWith("\n")) throw new Error("the exposition does not end with a newline")
  const samples: Array<Sample> = []
  const types = new Map<string, string>()
  const seenSamples = new Set<string>()
  const lines = text.split("\n")
  lines.pop()
  lines.forEach((line, index) => {
    const where = `line ${index + 1}: ${JSON.stringify(line)}`
    if (line === "") return
    if (line.startsWith("#")) {
      const type = typeLine.exec(line)
      if (type !== null) {
        if (types.has(type[1]!)) throw new Error(`${where}: a second TYPE for ${type[1]}`)
        if (seenSamples.has(type[1]!)) throw new Error(`${where}: TYPE after samples of ${type[1]}`)
        types.set(type[1]!, type[2]!)
        return
      }
      if (line.startsWith("# HELP")) {
        if (helpLine.exec(line) === null) throw new Error(`${where}: malformed HELP line`)
        return
      }
      if (line.startsWith("# TYPE")) throw new Error(`${where}: malformed TYPE line`)
      return // another comment
    }
    const match = sampleLine.exec(line)
    if (match === null) throw new Error(`${where}: not a sample line (name{labels} value)`)
    const name = match[1]!
    const labels: Record<string, string> = {}
    for (const pair of (match[2] ?? "").matchAll(labelPair)) {
      const label = pair[1]!
      if (Object.hasOwn(labels, label)) throw new Error(`${where}: label ${label} twice`)
      labels[label] = unescape(pair[2]!)
    }
    const family = [...types.keys()].find((f) =>
      f === name || (types.get(f) === "histogram" && [`${f}_bucket`, `${f}_sum`, `${f}_count`].includes(name)) ||
      (types.get(f) === "summary" && [`${f}_sum`, `${f}_count`].includes(name))
    )
    if (family !== undefined) {
      const type = types.get(family)!
      if (type === "histogram" && name === family) throw new Error(`${where}: a histogram sample must be _bucket, _sum or _count`)
      if (type === "histogram" && name.endsWith("_bucket") && labels.le === undefined) throw new Error(`${where}: bucket without le`)
      seenSamples.add(family)
    }
    seenSamples.add(name)
    samples.push({ name, labels, value: parseValue(match[3]!) })
  })
  return samples
}

/** The value of the sample with exactly these labels (undefined when absent). */
export const sampleValue = (samples: ReadonlyArray<Sample>, name: string, labels: Record<string, string> = {}): number | undefined => {
  const wanted = Object.entries(labels)
  const found = samples.find((s) =>
    s.name === name && Object.keys(s.labels).length === wanted.length && wanted.every(([k, v]) => s.labels[k] === v)
  )
  return found?.value
}

/** The sum over every sample of `name` whose labels include `labels`. */
export const sampleSum = (samples: ReadonlyArray<Sample>, name: string, labels: Record<string, string> = {}): number =>
  samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0)
