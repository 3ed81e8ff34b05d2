// npm links node_modules/.bin/node to the Node binary package the release is
// built from (node-linux-<arch>, bin "node"), and npm scripts put
// node_modules/.bin first on PATH: `npm test` would then run the tools (jest,
// tsc, the build) on that Node instead of the host's. That binary is an input
// of the release only (scripts/build.js runs it by path), so the link goes.
'use strict';
const fs = require('fs');
const path = require('path');

const link = path.join(__dirname, '..', '..', 'node_modules', '.bin', 'node');
try {
  if (fs.readlinkSync(link).includes('node-linux-')) fs.unlinkSync(link);
} catch {
  // no link: nothing to do
}
