/**
 * Writes public/icons/kirjava-{16,32,48}.png from kirjava-128.png (the toolbar and store
 * sizes), by averaging each target pixel's area of the large icon (alpha-weighted, so the
 * transparent border does not darken the edges). Run it after changing the 128 px icon:
 * `scripts/node22 --import tsx build/icons.ts`; the PNGs it writes are committed.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { crc32, deflateSync, inflateSync } from 'node:zlib';

/** The sizes written besides the 128 px original. */
const SIZES = [16, 32, 48] as const;
const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

interface Rgba {
  width: number;
  height: number;
  pixels: Uint8Array;
}

/** An 8-bit RGBA, non-interlaced PNG (what kirjava-128.png is) as raw pixels. */
function decode(png: Buffer): Rgba {
  if (!png.subarray(0, 8).equals(SIGNATURE)) throw new Error('not a PNG');
  let width = 0;
  let height = 0;
  const data: Buffer[] = [];
  for (let at = 8; at < png.length;) {
    const length = png.readUInt32BE(at);
    const type = png.toString('latin1', at + 4, at + 8);
    const body = png.subarray(at + 8, at + 8 + length);
    if (type === 'IHDR') {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      if (body[8] !== 8 || body[9] !== 6 || body[12] !== 0) throw new Error('only 8-bit RGBA, non-interlaced');
    } else if (type === 'IDAT') data.push(body);
    at += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(data));
  const stride = width * 4;
  const pixels = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    for (let x = 0; x < stride; x++) {
      const value = raw[y * (stride + 1) + 1 + x];
      const left = x >= 4 ? pixels[y * stride + x - 4] : 0;
      const up = y > 0 ? pixels[(y - 1) * stride + x] : 0;
      const upLeft = x >= 4 && y > 0 ? pixels[(y - 1) * stride + x - 4] : 0;
      let predictor = 0;
      if (filter === 1) predictor = left;
      else if (filter === 2) predictor = up;
      else if (filter === 3) predictor = (left + up) >> 1;
      else if (filter === 4) {
        const p = left + up - upLeft;
        const [pa, pb, pc] = [Math.abs(p - left), Math.abs(p - up), Math.abs(p - upLeft)];
        predictor = pa <= pb && pa <= pc ? left : pb <= pc ? up : upLeft;
      }
      pixels[y * stride + x] = (value + predictor) & 0xff;
    }
  }
  return { width, height, pixels };
}

function chunk(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(body.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), body])), 0);
  return Buffer.concat([head, body, crc]);
}

function encode({ width, height, pixels }: Rgba): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 6, 0, 0, 0], 8);
  const stride = width * 4;
  const raw = Buffer.alloc((stride + 1) * height);
  for (let y = 0; y < height; y++) raw.set(pixels.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  return Buffer.concat([
    SIGNATURE,
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(raw, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** `image` at `size`×`size`: each pixel the alpha-weighted mean of the source area it covers. */
function downscale(image: Rgba, size: number): Rgba {
  const pixels = new Uint8Array(size * size * 4);
  const scale = image.width / size;
  for (let ty = 0; ty < size; ty++) {
    for (let tx = 0; tx < size; tx++) {
      const sum = [0, 0, 0, 0];
      let area = 0;
      for (let sy = Math.floor(ty * scale); sy < Math.ceil((ty + 1) * scale); sy++) {
        const wy = Math.min(sy + 1, (ty + 1) * scale) - Math.max(sy, ty * scale);
        for (let sx = Math.floor(tx * scale); sx < Math.ceil((tx + 1) * scale); sx++) {
          const w = wy * (Math.min(sx + 1, (tx + 1) * scale) - Math.max(sx, tx * scale));
          const at = (sy * image.width + sx) * 4;
          const alpha = image.pixels[at + 3] / 255;
          for (let c = 0; c < 3; c++) sum[c] += image.pixels[at + c] * alpha * w;
          sum[3] += alpha * w;
          area += w;
        }
      }
      const at = (ty * size + tx) * 4;
      for (let c = 0; c < 3; c++) pixels[at + c] = sum[3] > 0 ? Math.round(sum[c] / sum[3]) : 0;
      pixels[at + 3] = Math.round((sum[3] / area) * 255);
    }
  }
  return { width: size, height: size, pixels };
}

const dir = resolve(import.meta.dirname, '..', 'public', 'icons');
const original = decode(await readFile(resolve(dir, 'kirjava-128.png')));
for (const size of SIZES) {
  await writeFile(resolve(dir, `kirjava-${size}.png`), encode(downscale(original, size)));
  console.log(`public/icons/kirjava-${size}.png`);
}
