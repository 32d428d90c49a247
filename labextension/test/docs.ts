/** The trace documents written by tests/docs.py (see global-setup.js). */
import * as fs from 'fs';
import * as path from 'path';

const DIR = path.resolve(__dirname, '../../build/docs');

export type DocName = 'agent' | 'xss' | 'empty' | 'big' | 'framework';

export function loadDoc(name: DocName): Record<string, any> {
  return JSON.parse(fs.readFileSync(path.join(DIR, `${name}.json`), 'utf-8'));
}
