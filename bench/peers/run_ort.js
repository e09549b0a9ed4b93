// Runs the ONNX graphs of export_onnx.py in onnxruntime-node (CPU execution
// provider, all graph optimisations, sequential execution) and prints one
// JSON line: {"engine":"ort","batch":B,"threads":N,"image_per_s":…,"text_per_s":…}.
//
//   node run_ort.js ONNX_DIR BATCH THREADS [ROUNDS=3] [WARMUP=1] [--check]
//
// --check first runs sample.json's inputs and fails unless ONNX Runtime
// matches the PyTorch outputs stored there (relative max error <= 1e-4).
//
//   node run_ort.js --serve THREADS ONNX_DIR [ONNX_DIR...]
//
// serves compare.py instead: prints "ready", then per stdin line
// "ort MODEL TOWER BATCH" (MODEL the index of an ONNX_DIR) runs one forward
// pass and prints its seconds.
// NODE_PATH must reach a node_modules holding onnxruntime-node@1.30.0.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

function inputs(sample, B) {
  const S = sample.image_size, T = sample.context;
  // Random inputs as mope bench makes them: normal pixels, texts of T tokens ending in EOT.
  let seed = 1;
  const rnd = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
  const px = new Float32Array(B * 3 * S * S);
  for (let i = 0; i < px.length; i++) px[i] = Math.sqrt(-2 * Math.log(rnd() + 1e-12)) * Math.cos(2 * Math.PI * rnd());
  const ids = new BigInt64Array(B * T);
  for (let i = 0; i < ids.length; i++) ids[i] = BigInt(1 + Math.floor(rnd() * 49000));
  const eot = new BigInt64Array(B).fill(BigInt(T - 1));
  return {
    image: { pixels: new ort.Tensor('float32', px, [B, 3, S, S]) },
    text: { ids: new ort.Tensor('int64', ids, [B, T]), eot: new ort.Tensor('int64', eot, [B]) },
  };
}

function sessionOptions(threads) {
  return {
    executionProviders: ['cpu'], graphOptimizationLevel: 'all', executionMode: 'sequential',
    intraOpNumThreads: threads, interOpNumThreads: 1,
  };
}

async function serve(threads, dirs) {
  const models = [];
  for (const dir of dirs) {
    models.push({
      image: await ort.InferenceSession.create(`${dir}/image.onnx`, sessionOptions(threads)),
      text: await ort.InferenceSession.create(`${dir}/text.onnx`, sessionOptions(threads)),
      sample: JSON.parse(fs.readFileSync(`${dir}/sample.json`, 'utf8')),
      feeds: new Map(),
    });
  }
  console.log('ready');
  const rl = require('readline').createInterface({ input: process.stdin });
  for await (const line of rl) {
    const [eng, mi, tower, B] = line.trim().split(/\s+/);
    const m = models[+mi];
    if (eng !== 'ort' || !m || !(tower in { image: 1, text: 1 }) || !(+B >= 1)) throw new Error(`bad request ${line}`);
    if (!m.feeds.has(+B)) m.feeds.set(+B, inputs(m.sample, +B));
    const feed = m.feeds.get(+B)[tower];
    const t0 = process.hrtime.bigint();
    await m[tower].run(feed);
    console.log(Number(process.hrtime.bigint() - t0) / 1e9);
  }
}

async function main() {
  const args = process.argv.slice(2);
  if (args[0] === '--serve') return serve(+args[1], args.slice(2));
  const check = args.includes('--check');
  const [dir, batchS, threadsS, roundsS = '3', warmupS = '1'] = args.filter((a) => a !== '--check');
  const B = +batchS, threads = +threadsS, rounds = +roundsS, warmup = +warmupS;
  const opts = sessionOptions(threads);
  const img = await ort.InferenceSession.create(`${dir}/image.onnx`, opts);
  const txt = await ort.InferenceSession.create(`${dir}/text.onnx`, opts);
  const sample = JSON.parse(fs.readFileSync(`${dir}/sample.json`, 'utf8'));
  if (check) {
    const oi = await img.run({ pixels: new ort.Tensor('float32', Float32Array.from(sample.pixels), sample.pixels_shape) });
    const ot = await txt.run({
      ids: new ort.Tensor('int64', BigInt64Array.from(sample.ids.map(BigInt)), sample.ids_shape),
      eot: new ort.Tensor('int64', BigInt64Array.from(sample.eot.map(BigInt)), [sample.eot.length]),
    });
    for (const [name, got, want] of [['image', oi.image_embeds.data, sample.image_embeds], ['text', ot.text_embeds.data, sample.text_embeds]]) {
      let d = 0, n = 0;
      for (let i = 0; i < want.length; i++) { d = Math.max(d, Math.abs(got[i] - want[i])); n = Math.max(n, Math.abs(want[i])); }
      process.stderr.write(`check ${name}: ONNX Runtime vs PyTorch relative max error ${(d / n).toExponential(2)}\n`);
      if (!(d / n <= 1e-4)) throw new Error(`${name} outputs differ from PyTorch`);
    }
  }
  const { image: feedI, text: feedT } = inputs(sample, B);
  const measure = async (sess, feed) => {
    for (let i = 0; i < warmup; i++) await sess.run(feed);
    const secs = [];
    for (let i = 0; i < rounds; i++) {
      const t0 = process.hrtime.bigint();
      await sess.run(feed);
      secs.push(Number(process.hrtime.bigint() - t0) / 1e9);
    }
    secs.sort((a, b) => a - b);
    const m = secs.length % 2 ? secs[(secs.length - 1) / 2] : (secs[secs.length / 2 - 1] + secs[secs.length / 2]) / 2;
    return B / m;
  };
  const out = { engine: 'ort', batch: B, threads, rounds };
  out.image_per_s = await measure(img, feedI);
  out.text_per_s = await measure(txt, feedT);
  console.log(JSON.stringify(out));
}

main().catch((e) => { console.error(e); process.exit(1); });
