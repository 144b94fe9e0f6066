// esbuild's `text` loader (scripts/build.mjs): `import css from './style.css'` is the file's text.
declare module '*.css' {
  const text: string;
  export default text;
}
