// Where the addon built against the libtorch that the environment chooses lives: the one rule that
// scripts/setup.mjs (which builds it) and src/torch/native.ts (which loads it) share, so that each libtorch
// has its own build folder and switching between them rebuilds nothing.
//   LIBTORCH=DIR               build/native-libtorch-<hash of DIR>/sppo.node
//   LIBTORCH_USE_PYTORCH=1     build/native-pytorch-<hash of the python that PYTHON names, else python3 on PATH>/sppo.node
//   neither                    build/native/sppo.node   (the system's libtorch, e.g. Debian's libtorch-dev)
// SPPO_NATIVE=FILE loads that file instead (setup still builds by the rule above).
'use strict';
const { createHash } = require('node:crypto');
const { statSync } = require('node:fs');
const { delimiter, isAbsolute, join, resolve } = require('node:path');

const short = (s) => createHash('sha256').update(s).digest('hex').slice(0, 10);

/** The interpreter LIBTORCH_USE_PYTORCH asks: $PYTHON (a path, or a name found on PATH), else python3 on PATH. */
function pythonPath(env) {
  const name = env.PYTHON || 'python3';
  if (name.includes('/')) return isAbsolute(name) ? name : resolve(name);
  for (const dir of (env.PATH || '').split(delimiter)) {
    const p = join(dir || '.', name);
    try {
      if (statSync(p).isFile()) return resolve(p);
    } catch {}
  }
  return name;
}

/** { dir, file, why }: the build folder, the addon in it, and which variable chose it (for messages). */
function addonPath(root, env = process.env) {
  let folder = 'native';
  let why = "the system's libtorch (neither LIBTORCH nor LIBTORCH_USE_PYTORCH=1 set)";
  if (env.LIBTORCH) {
    const dir = resolve(env.LIBTORCH);
    folder = `native-libtorch-${short(dir)}`;
    why = `LIBTORCH=${dir}`;
  } else if (env.LIBTORCH_USE_PYTORCH === '1') {
    const py = pythonPath(env);
    folder = `native-pytorch-${short(py)}`;
    why = `LIBTORCH_USE_PYTORCH=1 with ${py}`;
  }
  const dir = join(root, 'build', folder);
  return { dir, file: join(dir, 'sppo.node'), why };
}

module.exports = { addonPath, pythonPath };
