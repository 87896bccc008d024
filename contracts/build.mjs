// Compile the Kommons contracts with the pinned solc-js (package-lock.json) and write the
// artifacts the Python package loads: abi, bytecode, deployedBytecode, compiler, settings.
//
// Usage: node contracts/build.mjs [--out ROOT]
//   ROOT (default: the repository) is where the artifact paths below are written, so
//   `make verify-contracts` can build into a temporary directory and compare byte for byte.
// Settings are fixed here (never taken from the environment), so a build is reproducible.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "..");
const require = createRequire(import.meta.url);
const solc = require("solc");

const SOLC_VERSION = "0.8.37";
/** Compiler settings: the optimizer tuned for calls (claims), and an EVM every target runs. */
const SETTINGS = {
  optimizer: { enabled: true, runs: 10000 },
  evmVersion: "cancun",
  metadata: { bytecodeHash: "ipfs" },
  outputSelection: {
    "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] },
  },
};
/** Source unit name (relative to the repository) -> contract -> artifact path. */
const TARGETS = [
  ["contracts/Settlement.sol", "Settlement", "operator/kommons/settlement/artifacts/Settlement.json"],
  ["contracts/TestToken.sol", "TestToken", "operator/kommons/settlement/artifacts/TestToken.json"],
  ["contracts/bench/NaiveSettlement.sol", "NaiveSettlement", "bench/artifacts/NaiveSettlement.json"],
];

function parseArgs(argv) {
  let out = repo;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--out" && i + 1 < argv.length) out = resolve(argv[++i]);
    else throw new Error(`unknown argument ${argv[i]} (usage: build.mjs [--out ROOT])`);
  }
  return { out };
}

/** Resolve `import "@openzeppelin/..."` from contracts/node_modules; nothing else is allowed. */
function findImports(path) {
  if (!path.startsWith("@openzeppelin/contracts/")) {
    return { error: `import ${path} is not under @openzeppelin/contracts/` };
  }
  try {
    return { contents: readFileSync(join(here, "node_modules", path), "utf8") };
  } catch (err) {
    return { error: `cannot read ${path} from contracts/node_modules (run make deps): ${err}` };
  }
}

function main() {
  const { out } = parseArgs(process.argv.slice(2));
  const version = solc.version();
  if (!version.startsWith(`${SOLC_VERSION}+`)) {
    throw new Error(`solc ${version} is not the pinned ${SOLC_VERSION} (run make deps)`);
  }
  const sources = {};
  for (const [unit] of TARGETS) sources[unit] = { content: readFileSync(join(repo, unit), "utf8") };
  const input = { language: "Solidity", sources, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const problems = output.errors || [];
  for (const p of problems) if (p.severity !== "error") console.error(p.formattedMessage);
  const errors = problems.filter((p) => p.severity === "error");
  if (errors.length) {
    for (const e of errors) console.error(e.formattedMessage);
    process.exit(1);
  }
  const { outputSelection, ...settings } = SETTINGS;
  for (const [unit, name, artifactPath] of TARGETS) {
    const contract = output.contracts[unit][name];
    const artifact = {
      contractName: name,
      sourceName: unit,
      compiler: { name: "solc-js", version },
      settings,
      abi: contract.abi,
      bytecode: `0x${contract.evm.bytecode.object}`,
      deployedBytecode: `0x${contract.evm.deployedBytecode.object}`,
    };
    const dest = join(out, artifactPath);
    mkdirSync(dirname(dest), { recursive: true });
    writeFileSync(dest, `${JSON.stringify(artifact, null, 2)}\n`);
    const size = contract.evm.deployedBytecode.object.length / 2;
    console.log(`build: ${artifactPath} (${name}, ${size} bytes runtime, solc ${version})`);
  }
}

main();
