// Runs the ONNX files of `mope export --format onnx` in ONNX Runtime
// (onnxruntime-node, CPU execution provider).
//
//   node ort.js run DIR INPUTS.json OUTPUTS.json
//
// INPUTS.json holds {"pixels": [...], "pixels_shape": [N,3,S,S], "ids": [...],
// "ids_shape": [B,T]} (either part may be absent); OUTPUTS.json gets
// {"image_embeds": [...], "text_embeds": [...], "image_shape": [...],
// "text_shape": [...]}, flat row-major float32 values.
//
//   node ort.js bench THREADS BATCH ROUNDS DIR [DIR...]
//
// times one forward pass of each tower of each DIR per round, the DIRs
// interleaved within a round (after one warm-up pass each), and prints one
// JSON line per DIR and tower with every round's seconds and the median.
// Inputs: fixed pseudo-random pixels; ids of full context length ending in
// the model's eos_token_id (sizes from DIR/export.json).
//
// NODE_PATH must reach a node_modules holding onnxruntime-node.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

function options(threads) {
  return {
    executionProviders: ['cpu'], graphOptimizationLevel: 'all', executionMode: 'sequential',
    intraOpNumThreads: threads, interOpNumThreads: 1,
  };
}

async function run(dir, inPath, outPath) {
  const inp = JSON.parse(fs.readFileSync(inPath, 'utf8'));
  const out = {};
  if (inp.pixels) {
    const s = await ort.InferenceSession.create(`${dir}/image_encoder.onnx`, options(1));
    const r = await s.run({ pixel_values: new ort.Tensor('float32', Float32Array.from(inp.pixels), inp.pixels_shape) });
    out.image_embeds = Array.from(r.image_embeds.data);
    out.image_shape = r.image_embeds.dims;
  }
  if (inp.ids) {
    const s = await ort.InferenceSession.create(`${dir}/text_encoder.onnx`, options(1));
    const r = await s.run({ input_ids: new ort.Tensor('int64', BigInt64Array.from(inp.ids.map(BigInt)), inp.ids_shape) });
    out.text_embeds = Array.from(r.text_embeds.data);
    out.text_shape = r.text_embeds.dims;
  }
  fs.writeFileSync(outPath, JSON.stringify(out));
}

function feeds(dir, B) {
  const info = JSON.parse(fs.readFileSync(`${dir}/export.json`, 'utf8'));
  const S = info.image_size, T = info.context_length;
  let seed = 1;
  const rnd = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
  const px = new Float32Array(B * 3 * S * S);
  for (let i = 0; i < px.length; i++) px[i] = Math.sqrt(-2 * Math.log(rnd() + 1e-12)) * Math.cos(2 * Math.PI * rnd());
  const ids = new BigInt64Array(B * T);
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < T - 1; j++) ids[b * T + j] = BigInt(1 + Math.floor(rnd() * (info.eos_token_id - 1)));
    ids[b * T + T - 1] = BigInt(info.eos_token_id);
  }
  return {
    image: { pixel_values: new ort.Tensor('float32', px, [B, 3, S, S]) },
    text: { input_ids: new ort.Tensor('int64', ids, [B, T]) },
  };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function bench(threads, B, rounds, dirs) {
  const models = [];
  for (const dir of dirs) {
    models.push({
      dir,
      image: await ort.InferenceSession.create(`${dir}/image_encoder.onnx`, options(threads)),
      text: await ort.InferenceSession.create(`${dir}/text_encoder.onnx`, options(threads)),
      feeds: feeds(dir, B),
      secs: { image: [], text: [] },
    });
  }
  for (const m of models) for (const t of ['image', 'text']) await m[t].run(m.feeds[t]);
  for (let r = 0; r < rounds; r++) {
    for (const t of ['image', 'text']) {
      for (let i = 0; i < models.length; i++) {
        const m = models[(i + r) % models.length]; // rotate the order
        const t0 = process.hrtime.bigint();
        await m[t].run(m.feeds[t]);
        m.secs[t].push(Number(process.hrtime.bigint() - t0) / 1e9);
      }
    }
  }
  for (const m of models) {
    for (const t of ['image', 'text']) {
      console.log(JSON.stringify({ dir: m.dir, tower: t, batch: B, threads, median_s: median(m.secs[t]), secs: m.secs[t] }));
    }
  }
}

async function main() {
  const [mode, ...a] = process.argv.slice(2);
  if (mode === 'run' && a.length === 3) return run(a[0], a[1], a[2]);
  if (mode === 'bench' && a.length >= 4) return bench(+a[0], +a[1], +a[2], a.slice(3));
  throw new Error('usage: node ort.js run DIR INPUTS.json OUTPUTS.json | bench THREADS BATCH ROUNDS DIR...');
}

main().catch((e) => { console.error(e.message || e); process.exit(1); });
