// Regenerates schemas/merge-config.schema.json (VS Code's schema for *.merge.yaml / *.merge.yml) from the
// merge-method registry:
//
//     npx tsx src/files/merge/write-schema.ts
//
// test/unit/merge-config.test.ts fails while the committed file differs from what this writes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { mergeSchemaFileText } from './schema';

export const MERGE_SCHEMA_FILE = path.resolve(__dirname, '../../../schemas/merge-config.schema.json');

if (require.main === module) {
  fs.mkdirSync(path.dirname(MERGE_SCHEMA_FILE), { recursive: true });
  fs.writeFileSync(MERGE_SCHEMA_FILE, mergeSchemaFileText());
  console.log(`wrote ${path.relative(process.cwd(), MERGE_SCHEMA_FILE)}`);
}
