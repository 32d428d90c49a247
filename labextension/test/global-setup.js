/**
 * Writes the test trace documents (agent, xss, empty, big, framework) with the Python package's
 * own builder, tests/docs.py, into build/docs. Skipped when they are newer than the
 * Python sources that make them, since the 10k-span document takes a while to build.
 */
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '../..');
const OUT = path.join(ROOT, 'build', 'docs');
const NAMES = ['agent', 'xss', 'empty', 'big', 'framework'];

function python() {
  if (process.env.LLMTRACE_PYTHON) {
    return process.env.LLMTRACE_PYTHON;
  }
  const venv = path.join(ROOT, '.venv', 'bin', 'python');
  return fs.existsSync(venv) ? venv : 'python3';
}

function newestSource() {
  const dirs = [path.join(ROOT, 'llmtrace_nb'), path.join(ROOT, 'tests')];
  let newest = 0;
  for (const dir of dirs) {
    for (const name of fs.readdirSync(dir)) {
      if (name.endsWith('.py')) {
        newest = Math.max(newest, fs.statSync(path.join(dir, name)).mtimeMs);
      }
    }
  }
  return newest;
}

module.exports = async function globalSetup() {
  const files = NAMES.map(n => path.join(OUT, `${n}.json`));
  const fresh =
    files.every(f => fs.existsSync(f)) &&
    Math.min(...files.map(f => fs.statSync(f).mtimeMs)) > newestSource();
  if (!fresh) {
    execFileSync(python(), [path.join('tests', 'docs.py'), OUT], {
      cwd: ROOT,
      stdio: 'inherit'
    });
  }
  process.env.LLMTRACE_DOCS = OUT;
};
