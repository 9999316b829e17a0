#!/usr/bin/env node
// Runs the OpenAPI tools a client author would on a document: validates it with
// @apidevtools/swagger-parser and generates TypeScript types with openapi-typescript.
//   node test/support/openapi-tools.mjs DOCUMENT.json TYPES.d.ts
// A child process of its own: swagger-parser is CommonJS requiring ESM, which Node loads and
// jest's module runtime does not. Exit 1 with the validator's message on an invalid document.
import { readFileSync, writeFileSync } from 'node:fs';
import SwaggerParser from '@apidevtools/swagger-parser';
import openapiTS, { astToString } from 'openapi-typescript';

const [documentFile, typesFile] = process.argv.slice(2);
if (!documentFile || !typesFile) {
  console.error('usage: openapi-tools.mjs DOCUMENT.json TYPES.d.ts');
  process.exit(2);
}
const read = () => JSON.parse(readFileSync(documentFile, 'utf8'));
try {
  // validate() dereferences the document it is given: each tool gets its own copy.
  await SwaggerParser.validate(read());
} catch (err) {
  console.error(`invalid OpenAPI document: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
writeFileSync(typesFile, astToString(await openapiTS(read())));
