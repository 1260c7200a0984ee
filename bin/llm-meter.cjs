#!/usr/bin/env node
'use strict';
// `llm-meter report usage.jsonl [...]`: see the README (A usage report).
require('../dist/src/report/cli.js').main(process.argv.slice(2));
