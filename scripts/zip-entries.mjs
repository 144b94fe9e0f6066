// The entry names of a zip archive (a .vsix), read with yauzl (a devDependency): a fresh machine has no `unzip`,
// and neither the package script nor the tests may depend on a system tool the README does not install.
import yauzl from 'yauzl';

/** @param {string} file @returns {Promise<string[]>} */
export function zipEntries(file) {
  return new Promise((resolve, reject) => {
    yauzl.open(file, { lazyEntries: true }, (err, zip) => {
      if (err) return reject(err);
      const names = [];
      zip.on('entry', (e) => {
        names.push(e.fileName);
        zip.readEntry();
      });
      zip.on('end', () => resolve(names));
      zip.on('error', reject);
      zip.readEntry();
    });
  });
}
