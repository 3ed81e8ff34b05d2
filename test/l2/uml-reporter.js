// The guest side of the l2 tier: jest inside user-mode-linux reports each test
// file's start and result as a JSON file in the results directory
// (L2_OUT, a writable host directory), which test/l2/runner.ts on the host
// turns back into jest results as they appear. Plain JS: jest loads
// reporters without transforming them.
const fs = require('fs');
const path = require('path');

/** Atomic, so the host never reads half a file. */
function writeJson(dir, name, value) {
  const file = path.join(dir, name);
  // failureDetails hold the raw errors (possibly circular); failureMessages keep their text.
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(value, (key, v) => (key === 'failureDetails' ? [] : v)));
  fs.renameSync(`${file}.tmp`, file);
}

class UmlResultReporter {
  constructor() {
    this.dir = process.env.L2_OUT;
    this.seq = 0;
    this.numbers = new Map();
  }

  onTestFileStart(test) {
    const n = this.seq++;
    this.numbers.set(test.path, n);
    writeJson(this.dir, `${n}-0-start.json`, { path: test.path });
  }

  onTestFileResult(test, result) {
    const n = this.numbers.get(test.path) ?? this.seq++;
    writeJson(this.dir, `${n}-1-result.json`, { path: test.path, result });
  }

  getLastError() {
    return undefined;
  }
}

module.exports = UmlResultReporter;
