// The program the l2 tier runs in its user-mode-linux guest (./runner.ts):
// jest on the tier's test files, with the arguments the runner wrote.
'use strict';
const fs = require('fs');
const path = require('path');

const args = JSON.parse(fs.readFileSync(path.join(process.env.L2_OUT, 'args.json'), 'utf8'));
require(path.join(process.env.L2_ROOT, 'node_modules', 'jest')).run(args);
