/**
 * Offline schema check of Kubernetes objects against the API types that @kubernetes/client-node
 * generates from the Kubernetes OpenAPI: every field must exist on its type (a misspelt
 * `readinesProbe` is an error, as with `kubectl apply --validate=strict`) and have its type.
 */
import * as k8s from "@kubernetes/client-node"

interface Attribute {
  readonly baseName: string
  readonly type: string
}

interface Model {
  readonly getAttributeTypeMap: () => ReadonlyArray<Attribute>
}

const exported = k8s as unknown as Record<string, unknown>

const modelOf = (type: string): Model | undefined => {
  const candidate = exported[type]
  return typeof candidate === "function" && "getAttributeTypeMap" in candidate ? (candidate as unknown as Model) : undefined
}

/** The generated type of a kind: `apps/v1` + `Deployment` → `V1Deployment`. */
export const modelName = (apiVersion: string, kind: string): string => {
  const version = apiVersion.split("/").at(-1) ?? ""
  return `V${version.slice(1)}${kind}`
}

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** Every deviation of `value` from the type `type`, each as "path: what is wrong". */
export const schemaErrors = (value: unknown, type: string, path = ""): Array<string> => {
  const at = path === "" ? "(root)" : path
  if (value === null) return [] // null means "unset" to the API server
  switch (type) {
    case "string":
    case "Date":
      return typeof value === "string" ? [] : [`${at}: expected a string, got ${JSON.stringify(value)}`]
    case "number":
      return typeof value === "number" ? [] : [`${at}: expected a number, got ${JSON.stringify(value)}`]
    case "boolean":
      return typeof value === "boolean" ? [] : [`${at}: expected a boolean, got ${JSON.stringify(value)}`]
    case "IntOrString":
      return typeof value === "number" || typeof value === "string" ? [] : [`${at}: expected a number or a string`]
    case "any":
    case "object":
      return []
  }
  const array = /^Array<(.+)>$/.exec(type)
  if (array !== null) {
    if (!Array.isArray(value)) return [`${at}: expected a list`]
    return value.flatMap((item, index) => schemaErrors(item, array[1] ?? "", `${path}[${index}]`))
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type)
  if (map !== null) {
    if (!isPlainObject(value)) return [`${at}: expected a map`]
    return Object.entries(value).flatMap(([key, item]) => schemaErrors(item, map[1] ?? "", `${path}[${JSON.stringify(key)}]`))
  }
  const model = modelOf(type)
  if (model === undefined) return [`${at}: no schema for type ${type}`]
  if (!isPlainObject(value)) return [`${at}: expected an object (${type})`]
  const attributes = new Map(model.getAttributeTypeMap().map((attribute) => [attribute.baseName, attribute.type]))
  return Object.entries(value).flatMap(([key, field]) => {
    const fieldType = attributes.get(key)
    const fieldPath = path === "" ? key : `${path}.${key}`
    return fieldType === undefined ? [`${fieldPath}: unknown field of ${type}`] : schemaErrors(field, fieldType, fieldPath)
  })
}

export interface KubernetesObject {
  readonly apiVersion: string
  readonly kind: string
  readonly metadata: {
    readonly name: string
    readonly namespace?: string
    readonly labels?: Record<string, string>
    readonly annotations?: Record<string, string>
  }
  readonly [field: string]: unknown
}

/** Schema errors of a whole object, prefixed with its kind and name. */
export const objectErrors = (object: KubernetesObject): Array<string> => {
  const type = modelName(object.apiVersion, object.kind)
  const name = `${object.kind}/${object.metadata?.name ?? "?"}`
  if (modelOf(type) === undefined) return [`${name}: unknown kind ${object.apiVersion} ${object.kind}`]
  const errors = schemaErrors(object, type).map((error) => `${name}: ${error}`)
  if (typeof object.metadata?.name !== "string" || object.metadata.name === "") errors.push(`${name}: metadata.name is required`)
  return errors
}
