#!/usr/bin/env node
// The handlefs command: a thin shim that runs the compiled CLI from dist/.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const cli = path.join(__dirname, '..', 'dist', 'bin', 'cli.js');
if (!fs.existsSync(cli)) {
  process.stderr.write(`handlefs: ${cli} is missing; run \`npm run build\` first\n`);
  process.exit(2);
}
require(cli);
