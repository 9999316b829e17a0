#!/usr/bin/env node
// Derives the OpenAPI component schemas of the REST answers from their one declaration, the
// types of libs/api (ts compiler API: `extends`, `Omit<>`, intersections, literal unions, nullable
// fields and doc comments resolve as tsc sees them). Output, committed like the protobuf code:
// apps/control-plane/src/common/openapi/api-schemas.gen.ts, which the control plane adds to its
// OpenAPI document and its controllers name in @ApiAnswers(...).
//
//   node scripts/api-schemas.mjs           write the file
//   node scripts/api-schemas.mjs --check   exit 1 when the committed file is not what it would be
//
// Every exported interface or object type alias becomes a named schema; a field whose type is
// another one is a $ref. Literal unions, arrays, Record<string, X> and inline objects are inlined.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ENTRY = resolve(root, 'libs/api/src/index.ts');
export const OUTPUT = resolve(root, 'apps/control-plane/src/common/openapi/api-schemas.gen.ts');

/** The schemas of every exported object type of libs/api, by name, sorted. */
export function apiSchemas() {
  const program = ts.createProgram([ENTRY], {
    strict: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    noEmit: true,
    skipLibCheck: true,
  });
  const checker = program.getTypeChecker();
  const entry = program.getSourceFile(ENTRY);
  if (!entry) {
    throw new Error(`cannot read ${ENTRY}`);
  }
  const moduleSymbol = checker.getSymbolAtLocation(entry);
  /** Named schemas: the declared type's symbol → its name. */
  const named = new Map();
  const exported = [];
  for (const sym of checker.getExportsOfModule(moduleSymbol)) {
    const target = sym.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(sym) : sym;
    if (!(target.flags & (ts.SymbolFlags.Interface | ts.SymbolFlags.TypeAlias))) {
      continue;
    }
    const type = checker.getDeclaredTypeOfSymbol(target);
    if (!isObjectLike(type)) {
      continue;
    }
    named.set(target, sym.name);
    exported.push([sym.name, target, type]);
  }

  function isObjectLike(type) {
    if (type.isUnion()) {
      return false;
    }
    if (type.isIntersection()) {
      return type.types.every(isObjectLike);
    }
    return (
      (type.flags & ts.TypeFlags.Object) !== 0 &&
      !checker.isArrayType(type) &&
      checker.getSignaturesOfType(type, ts.SignatureKind.Call).length === 0
    );
  }

  function describe(sym) {
    const text = ts.displayPartsToString(sym.getDocumentationComment(checker)).trim();
    return text ? text.replace(/\s*\n\s*/g, ' ') : undefined;
  }

  function withNull(schema) {
    if (schema.$ref) {
      return { allOf: [schema], nullable: true };
    }
    return { ...schema, nullable: true };
  }

  function schemaOf(type) {
    if (type.isUnion()) {
      const parts = type.types;
      const hasNull = parts.some((t) => t.flags & ts.TypeFlags.Null);
      let rest = parts.filter((t) => !(t.flags & (ts.TypeFlags.Null | ts.TypeFlags.Undefined)));
      // `boolean` is the union true | false.
      const bools = rest.filter((t) => t.flags & ts.TypeFlags.BooleanLiteral);
      let schema;
      if (bools.length === 2) {
        rest = rest.filter((t) => !(t.flags & ts.TypeFlags.BooleanLiteral));
        schema = rest.length === 0 ? { type: 'boolean' } : undefined;
        if (schema === undefined) {
          rest = [...rest, checker.getBooleanType()];
        }
      }
      if (schema === undefined) {
        if (rest.length > 0 && rest.every((t) => t.isStringLiteral())) {
          schema = { type: 'string', enum: rest.map((t) => t.value) };
        } else if (rest.length > 0 && rest.every((t) => t.isNumberLiteral())) {
          schema = { type: 'number', enum: rest.map((t) => t.value) };
        } else if (rest.length === 1) {
          schema = schemaOf(rest[0]);
        } else {
          schema = { oneOf: rest.map((t) => schemaOf(t)) };
        }
      }
      return hasNull ? withNull(schema) : schema;
    }
    if (type.flags & ts.TypeFlags.String) {
      return { type: 'string' };
    }
    if (type.flags & ts.TypeFlags.Number) {
      return { type: 'number' };
    }
    if (type.flags & (ts.TypeFlags.Boolean | ts.TypeFlags.BooleanLiteral)) {
      return type.flags & ts.TypeFlags.BooleanLiteral
        ? { type: 'boolean', enum: [checker.typeToString(type) === 'true'] }
        : { type: 'boolean' };
    }
    if (type.isStringLiteral()) {
      return { type: 'string', enum: [type.value] };
    }
    if (type.isNumberLiteral()) {
      return { type: 'number', enum: [type.value] };
    }
    if (type.flags & (ts.TypeFlags.Unknown | ts.TypeFlags.Any)) {
      return {};
    }
    if (type.flags & ts.TypeFlags.Null) {
      return { nullable: true };
    }
    if (checker.isArrayType(type)) {
      return { type: 'array', items: schemaOf(checker.getTypeArguments(type)[0]) };
    }
    const sym = type.aliasSymbol ?? type.getSymbol();
    if (sym && named.has(sym)) {
      return { $ref: `#/components/schemas/${named.get(sym)}` };
    }
    if (type.flags & ts.TypeFlags.Object || type.isIntersection()) {
      return objectSchema(type);
    }
    throw new Error(`no schema for the type ${checker.typeToString(type)}`);
  }

  function objectSchema(type) {
    const properties = {};
    const required = [];
    for (const prop of checker.getPropertiesOfType(type)) {
      const decl = prop.valueDeclaration ?? prop.declarations?.[0];
      const propType = decl
        ? checker.getTypeOfSymbolAtLocation(prop, decl)
        : checker.getTypeOfSymbol(prop);
      const optional = (prop.flags & ts.SymbolFlags.Optional) !== 0;
      let schema = schemaOf(propType);
      const description = describe(prop);
      if (description) {
        schema = schema.$ref ? { allOf: [schema], description } : { ...schema, description };
      }
      properties[prop.name] = schema;
      if (!optional) {
        required.push(prop.name);
      }
    }
    const index = checker.getIndexInfoOfType(type, ts.IndexKind.String);
    const schema = { type: 'object' };
    if (Object.keys(properties).length > 0) {
      schema.properties = properties;
    }
    if (required.length > 0) {
      schema.required = required;
    }
    if (index) {
      schema.additionalProperties = schemaOf(index.type);
    }
    return schema;
  }

  const out = {};
  for (const [name, sym, type] of exported.sort((a, b) => a[0].localeCompare(b[0]))) {
    const schema = objectSchema(type);
    const description = describe(sym);
    out[name] = description ? { description, ...schema } : schema;
  }
  return out;
}

/** The generated module's text. */
export function render(schemas) {
  return `// Generated by scripts/api-schemas.mjs from libs/api: do not edit. Regenerate with
// \`node scripts/api-schemas.mjs\` after changing a type there (a test fails until you do).
import type { SchemaObject } from '@nestjs/swagger';

export const API_SCHEMAS = ${JSON.stringify(schemas, null, 2)} satisfies Record<string, SchemaObject>;

/** The name of a REST answer's schema (a type of @lq/api). */
export type ApiSchemaName = keyof typeof API_SCHEMAS;
`;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const text = render(apiSchemas());
  if (process.argv.includes('--check')) {
    let current = '';
    try {
      current = readFileSync(OUTPUT, 'utf8');
    } catch {
      // missing: differs
    }
    if (current !== text) {
      console.error(
        `${OUTPUT} is not what libs/api declares: run node scripts/api-schemas.mjs and commit it`,
      );
      process.exit(1);
    }
  } else {
    writeFileSync(OUTPUT, text);
    console.log(`wrote ${OUTPUT}`);
  }
}
