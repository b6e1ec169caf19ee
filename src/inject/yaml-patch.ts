// A JSON patch laid onto a YAML document's node tree rather than onto its data, so what the patch does not touch
// keeps its comments, order, quoting and layout (the `yaml` library keeps them on the nodes). Only the operations
// injection makes: add (to a map, or into a list at an index or its end), remove, replace.

import { type Document, isAlias, isMap, isSeq, type Node } from 'yaml'
import type { Operation } from './inject.js'

const unescapePart = (part: string): string => part.replace(/~1/g, '/').replace(/~0/g, '~')

const fail = (op: Operation, why: string): Error => new Error(`cannot ${op.op} ${op.path} in the YAML document: ${why}`)

/** applyToDocument changes `doc` in place by `ops`, in order; throws (naming the path) where the tree differs. */
export const applyToDocument = (doc: Document, ops: readonly Operation[]): void => {
  for (const op of ops) {
    const parts = op.path.split('/').slice(1).map(unescapePart)
    const last = parts.pop()
    if (last === undefined) throw fail(op, 'the document root cannot be replaced')
    let parent: unknown = doc.contents
    for (const part of parts) {
      if (isAlias(parent)) throw fail(op, 'it goes through a YAML alias (*name); expand the alias first')
      parent = isMap(parent) ? parent.get(part, true) : isSeq(parent) ? parent.items[Number(part)] : undefined
      if (parent === undefined) throw fail(op, `${JSON.stringify(part)} is not there`)
    }
    if (isAlias(parent)) throw fail(op, 'it goes through a YAML alias (*name); expand the alias first')
    // No anchors: an object the patch holds twice is written out twice, as a reader expects in a pod spec.
    const value = (): Node => doc.createNode('value' in op ? op.value : null, { aliasDuplicateObjects: false }) as Node
    if (isSeq(parent)) {
      const index = last === '-' ? parent.items.length : Number(last)
      if (!Number.isInteger(index) || index < 0 || index > parent.items.length) throw fail(op, `no index ${last}`)
      if (op.op === 'add') parent.items.splice(index, 0, value())
      else if (op.op === 'remove') parent.items.splice(index, 1)
      else if (op.op === 'replace') parent.items[index] = value()
      else throw fail(op, 'not an operation injection makes')
    } else if (isMap(parent)) {
      if (op.op === 'add' || op.op === 'replace') parent.set(last, value())
      else if (op.op === 'remove') parent.delete(last)
      else throw fail(op, 'not an operation injection makes')
    } else {
      throw fail(op, 'its parent is not a map or a list')
    }
  }
}
