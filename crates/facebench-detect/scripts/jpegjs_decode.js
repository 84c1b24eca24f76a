// Decodes face-api's demo photos with jpeg-js (the decoder of ../shared/reference/inputs.json)
// to raw RGB files sampleN.rgb, for the exactness test in tests/reference.rs.
//   npm pack jpeg-js@0.4.4 && tar xzf jpeg-js-0.4.4.tgz   (gives ./package)
//   node crates/facebench-detect/scripts/jpegjs_decode.js OUT_DIR [models dir] [jpeg-js dir]
const fs = require('fs');
const path = require('path');
const out = process.argv[2];
const models = process.argv[3] || 'models';
const jpeg = require(path.resolve(process.argv[4] || 'package'));
if (!out) { console.error('usage: jpegjs_decode.js OUT_DIR [models dir] [jpeg-js dir]'); process.exit(2); }
fs.mkdirSync(out, { recursive: true });
for (let i = 1; i <= 6; i++) {
  const file = path.join(models, 'face-api', 'demo', `sample${i}.jpg`);
  const d = jpeg.decode(fs.readFileSync(file), { useTArray: true, formatAsRGBA: false });
  fs.writeFileSync(path.join(out, `sample${i}.rgb`), Buffer.from(d.data));
  console.log(`${file}: ${d.width}x${d.height}`);
}
