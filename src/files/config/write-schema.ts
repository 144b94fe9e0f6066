// Regenerates schemas/train-config.schema.json (the file VS Code reads for hover, completion and validation of
// *.basin.yaml / *.basin.json) from `trainConfigSchema` in schema.ts, the single source of truth:
//
//     npx tsx src/files/config/write-schema.ts
//
// test/unit/config.test.ts fails while the committed file differs from what this writes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { schemaFileText } from './schema';

export const SCHEMA_FILE = path.resolve(__dirname, '../../../schemas/train-config.schema.json');

if (require.main === module) {
  fs.mkdirSync(path.dirname(SCHEMA_FILE), { recursive: true });
  fs.writeFileSync(SCHEMA_FILE, schemaFileText());
  console.log(`wrote ${path.relative(process.cwd(), SCHEMA_FILE)}`);
}
