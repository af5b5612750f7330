// Browser test of the playground: the real `qplay serve` and headless Debian Chromium driven by
// playwright-core. Registered in ctest by cmake/web.cmake (web_playground).
//
//   QPLAY_BINARY=build/qplay node tests/web/playground.test.mjs
//
// Environment: QPLAY_BINARY (required), QPLAY_WEB_DIR (default: web/ next to the binary),
// QPLAY_WEB_TEST_OUTPUT (screenshots; default build/test-output/web), QPLAY_CHROMIUM
// (default /usr/bin/chromium). A missing prerequisite is a failure, never a skip.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const sourceDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const binary = process.env.QPLAY_BINARY || path.join(sourceDir, 'build/qplay');
const webDir = process.env.QPLAY_WEB_DIR || path.join(path.dirname(binary), 'web');
const outDir = process.env.QPLAY_WEB_TEST_OUTPUT || path.join(path.dirname(binary), 'test-output/web');
const chromiumPath = process.env.QPLAY_CHROMIUM || '/usr/bin/chromium';
const STEP_TIMEOUT = 30_000;

function prerequisites() {
  const problems = [];
  if (!fs.existsSync(binary)) problems.push(`qplay binary '${binary}' does not exist (build it: make build)`);
  if (!fs.existsSync(chromiumPath)) problems.push(`Chromium '${chromiumPath}' is not installed (run make deps: it installs Debian's chromium)`);
  if (!fs.existsSync(path.join(sourceDir, 'node_modules/playwright-core')))
    problems.push(`node_modules/playwright-core is missing in ${sourceDir} (run make deps)`);
  if (!fs.existsSync(path.join(webDir, 'index.html')) || !fs.existsSync(path.join(webDir, 'vendor/preact.mjs')))
    problems.push(`the web UI is not built in '${webDir}' (cmake --build build builds it; it needs node_modules: run make deps)`);
  return problems;
}

// Starts `qplay serve --port 0` and resolves with {url, child} once it prints its URL.
function startServer(workspace) {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, ['serve', '--port', '0', '--workspace', workspace, '--web', webDir], {
      cwd: sourceDir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`qplay serve printed no URL within 60 s\nstdout: ${out}\nstderr: ${err}`));
    }, 60_000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /serving (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ url: m[1].endsWith('/') ? m[1] : `${m[1]}/`, child, stderr: () => err });
      }
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`qplay serve exited with ${code}\nstdout: ${out}\nstderr: ${err}`));
    });
  });
}

function stopServer(server) {
  return new Promise((resolve) => {
    if (!server || server.child.exitCode !== null) return resolve();
    const kill = setTimeout(() => server.child.kill('SIGKILL'), 10_000);
    server.child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    server.child.kill('SIGTERM');
  });
}

const problems = prerequisites();

test('playground in the browser', { timeout: 280_000 }, async (t) => {
  assert.deepEqual(problems, [], `prerequisites missing:\n  ${problems.join('\n  ')}`);
  const { chromium } = await import('playwright-core');
  fs.mkdirSync(outDir, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qplay-web-test-'));
  const workspace = path.join(tmp, 'workspace');
  const profile = path.join(tmp, 'chromium-profile');
  const downloads = path.join(tmp, 'downloads');
  fs.mkdirSync(downloads);

  let server = await startServer(workspace);
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    acceptDownloads: true,
    downloadsPath: downloads,
    viewport: { width: 1440, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-quic'],
  });
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(STEP_TIMEOUT);
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  const shot = async (name, options = {}) => {
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: path.join(outDir, `${name}.png`), ...options });
  };
  const bannerErrors = () => page.$$eval('.error-text', (els) => els.map((e) => e.textContent));
  const noErrors = async (step) => {
    const shown = await bannerErrors();
    assert.deepEqual(shown, [], `${step}: the page shows errors`);
    assert.deepEqual(pageErrors, [], `${step}: uncaught page errors`);
  };
  // Hash navigation keeps the page (and the loaded Plotly) alive, as a user clicking links would.
  const go = async (hash) => {
    await page.evaluate((h) => {
      location.hash = h;
    }, hash);
    await page.waitForFunction((h) => location.hash === h, hash);
  };
  const currentVersion = async () => Number(new URL(page.url()).hash.match(/[?&]v=(\d+)/)[1]);
  const quantizedText = () => page.locator('[data-testid=top5-quantized]').innerText();

  // Steps depend on each other: after the first failure the rest fail at once, naming it.
  let failedStep = null;
  const step = (name, fn) => t.test(name, async () => {
    if (failedStep) throw new Error(`not run: step '${failedStep}' failed`);
    try {
      await fn();
    } catch (e) {
      failedStep = name;
      console.error(`# qplay serve stderr so far:\n${server.stderr().replace(/^/gm, '#   ')}`);
      await shot(`failed-${name.replace(/[^a-z0-9]+/gi, '-')}`).catch(() => {});
      throw e;
    }
  });

  let baseVersion;
  let editedVersion;
  let editedAccuracy;
  let baseAccuracy;
  try {
    await step('the page loads with the model graph', async () => {
      await page.goto(server.url);
      await page.locator('.gnode').first().waitFor();
      assert.ok((await page.locator('.gnode').count()) > 20, 'the graph shows the model nodes');
      assert.match(await page.locator('.gsub').allTextContents().then((x) => x.join(' ')), /s=\S+ z=/, 'Q/DQ nodes show scale and zero point');
      baseVersion = await currentVersion();
      await shot('graph');
      await noErrors('graph');
    });

    await step('the layer table lists every quantized tensor and opens a layer', async () => {
      await page.click('[data-nav=layers]');
      const table = page.locator('[data-testid=layer-table] tbody tr');
      await table.first().waitFor();
      assert.ok((await table.count()) >= 20, 'quantized tensors are listed');
      await page.fill('[data-testid=layer-table] input.filter', 'conv2d_1');
      await page.locator('[data-testid=layer-table] td', { hasText: 'dB' }).first().waitFor();
      await shot('layers');
      await page.locator('[data-testid=layer-table] tbody tr a', { hasText: /^conv2d_1$/ }).first().click();
      await page.locator('[data-testid=layer-detail]').waitFor();
      // The first chart also waits for vendor/plotly.min.js (4.8 MB).
      await page.locator('[data-testid=activation-histogram] .main-svg').first().waitFor({ timeout: 90_000 });
      await page.locator('[data-testid=weight-heatmap] .main-svg').first().waitFor();
      assert.match(await page.locator('[data-testid=layer-metrics]').innerText(), /SQNR/);
      await shot('layer-detail');
      await noErrors('layer detail');
    });

    await step('inference shows both top-5s and the per-layer SQNR', async () => {
      await page.click('[data-nav=infer]');
      await page.locator('[data-testid=gallery] .thumb').first().waitFor();
      await page.locator('[data-testid=gallery] .thumb[data-index="3"]').click();
      await page.waitForURL(/image=3/);
      await page.locator('[data-testid=top5-quantized] .top5-row').first().waitFor();
      await page.locator('[data-testid=sqnr-chart] .main-svg').first().waitFor();
      await shot('inference');
      await noErrors('inference');
    });

    await step('evaluate the base version (background job with progress)', async () => {
      await go(`#/edit?v=${baseVersion}&layer=conv2d_1`);
      await page.locator('[data-testid=top5-quantized] .top5-row').first().waitFor();
      await page.click('[data-testid=evaluate-1000]');
      await page.locator('[data-testid=last-evaluation]').waitFor();
      baseAccuracy = await page.locator('[data-testid=last-evaluation] b').innerText();
      assert.match(baseAccuracy, /%$/);
    });

    let before;
    await step('changing a scale re-runs the current image', async () => {
      before = await quantizedText();
      const editor = page.locator('.tensor-editor', { has: page.locator('.tag.activation') }).first();
      const input = editor.locator('[data-testid=scale-input]');
      const scale = Number(await input.inputValue());
      assert.ok(scale > 0, 'the scale input shows the current scale');
      await input.fill(String(Number((scale / 6).toPrecision(4))));
      await input.press('Tab');
      await page.waitForFunction((v) => !new RegExp(`[?&]v=${v}(&|$)`).test(location.hash), baseVersion);
      editedVersion = await currentVersion();
      assert.notEqual(editedVersion, baseVersion, 'the edit made a new version');
      await page.waitForFunction((old) => {
        const el = document.querySelector('[data-testid=top5-quantized]');
        return el && el.innerText !== old;
      }, before);
      await page.locator('.tensor-editor.edited').first().waitFor();
      await noErrors('edit');
    });

    await step('evaluating 1,000 images shows the changed accuracy', async () => {
      await page.click('[data-testid=evaluate-1000]');
      await page.locator('[data-testid=evaluate-job][data-state=done]').waitFor();
      editedAccuracy = await page.locator('[data-testid=last-evaluation] b').innerText();
      assert.notEqual(editedAccuracy, baseAccuracy, `accuracy changed after the edit (base ${baseAccuracy})`);
      await page.locator(`[data-testid=history] tr[data-version="${editedVersion}"]`, { hasText: editedAccuracy }).waitFor();
      await page.locator('[data-testid=edit-sqnr] .main-svg').first().waitFor();
      await page.setViewportSize({ width: 1440, height: 1200 }); // the whole edit view in one picture
      await shot('edit');
      await page.setViewportSize({ width: 1440, height: 900 });
      await noErrors('evaluate');
    });

    await step('the accuracy view shows per-class results and flipped images', async () => {
      await page.click('[data-nav=accuracy]');
      await page.locator('[data-testid=per-class-chart] .main-svg').first().waitFor();
      await page.locator('[data-testid=confusion-chart] .main-svg').first().waitFor();
      await shot('accuracy');
      await noErrors('accuracy');
    });

    await step('undo returns to the base version and its prediction', async () => {
      await page.click('[data-nav=edit]');
      await page.locator('[data-testid=top5-quantized] .top5-row').first().waitFor();
      await page.click('[data-testid=undo]');
      await page.waitForFunction((v) => new RegExp(`[?&]v=${v}(&|$)`).test(location.hash), baseVersion);
      await page.waitForFunction((old) => {
        const el = document.querySelector('[data-testid=top5-quantized]');
        return el && el.innerText === old;
      }, before);
      assert.equal(await page.locator('[data-testid=redo]').isDisabled(), false, 'redo is possible');
      await noErrors('undo');
    });

    let exported;
    await step('export downloads the edited model as ONNX', async () => {
      await page.click('[data-testid=redo]');
      await page.waitForFunction((v) => new RegExp(`[?&]v=${v}(&|$)`).test(location.hash), editedVersion);
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid=export]')]);
      exported = path.join(downloads, 'exported.onnx');
      await download.saveAs(exported);
      const size = fs.statSync(exported).size;
      assert.ok(size > 10_000, `the exported model has ${size} bytes`);
    });

    await step('the exported model uploads and is listed', async () => {
      await page.click('[data-nav=models]');
      await page.fill('[data-testid=upload-name]', 'exported_edit');
      await page.setInputFiles('[data-testid=upload-model]', exported);
      await page.locator('[data-testid=upload-result]').waitFor();
      await page.locator('[data-testid=models-table] td', { hasText: 'exported_edit' }).first().waitFor();
      await shot('models');
      await noErrors('upload');
    });

    await step('residuals, sensitivity and quantize run as jobs', async () => {
      await go(`#/residuals?v=${baseVersion}`);
      await page.locator('[data-testid=residuals-table] tbody tr').first().waitFor();
      await shot('residuals');
      await page.click('[data-nav=modes]');
      await page.locator('[data-testid=modes-table] tbody tr').first().waitFor({ timeout: 60_000 });
      await shot('modes');
      await page.click('[data-nav=sensitivity]');
      await page.fill('.head-actions input[type=number]', '50');
      await page.locator('.head-actions input[type=number]').press('Tab');
      await page.fill('.head-actions input:not([type])', '4');
      await page.locator('.head-actions input:not([type])').press('Tab');
      await page.click('[data-testid=run-sensitivity]');
      await page.locator('[data-testid=sensitivity-chart] .main-svg').first().waitFor({ timeout: 90_000 });
      await shot('sensitivity');
      await page.click('[data-nav=quantize]');
      await page.locator('[data-testid=quantize-form]').waitFor();
      await page.fill('input[name=name]', 'ui_quantized');
      await page.fill('input[name=calib_count]', '100');
      await page.locator('input[name=calib_count]').press('Tab');
      await page.check('input[name=per_channel]');
      await page.click('[data-testid=run-quantize]');
      await page.locator('[data-testid=quantize-result]', { hasText: 'ui_quantized' }).waitFor({ timeout: 90_000 });
      await shot('quantize');
      await noErrors('residuals, sensitivity, quantize');
    });

    await step('after a restart the history is still there', async () => {
      await stopServer(server);
      server = await startServer(workspace);
      await page.goto(`${server.url}#/edit?v=${editedVersion}`);
      const row = page.locator(`[data-testid=history] tr[data-version="${editedVersion}"]`);
      await row.waitFor();
      assert.match(await row.innerText(), new RegExp(editedAccuracy.replace('.', '\\.')), 'the version keeps its accuracy');
      await page.locator('.tensor-editor.edited, [data-testid=layer-picker] small', { hasText: 'edited' }).first().waitFor();
      await noErrors('restart');
    });
  } finally {
    await context.close().catch(() => {});
    await stopServer(server);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
