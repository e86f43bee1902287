// Vite builds the console into web/dist (served by the control plane at /). `npm run dev:web` serves it
// with hot reload and proxies /api to a running control plane (FLOTILLA_URL, default :8080).
import preact from '@preact/preset-vite';
import { defineConfig } from 'vite';

const target = process.env.FLOTILLA_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
  root: import.meta.dirname,
  plugins: [preact()],
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 600 },
  // onnxruntime-web finds its wasm by URL; pre-bundling it for the dev server would break that.
  optimizeDeps: { exclude: ['onnxruntime-web'] },
  server: {
    proxy: { '/api': { target, changeOrigin: true } },
    headers: { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' },
  },
});
