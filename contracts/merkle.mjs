// The epoch tree with the standard tool, @openzeppelin/merkle-tree (pinned in package-lock.json).
// The Kommons tests compare kommons.settlement.merkle against it; a provider can use it to check
// its proof without any Kommons code.
//
//   node contracts/merkle.mjs build  < values.json   # [[epochId, payer, provider, amount], ...]
//     -> {"root": "0x..", "proofs": [[...], ...]}    # proofs in the order of the input values
//   node contracts/merkle.mjs verify < check.json    # {"root", "value": [..4 items..], "proof"}
//     -> {"valid": true|false}
import { readFileSync } from "node:fs";
import { StandardMerkleTree } from "@openzeppelin/merkle-tree";

const LEAF_ENCODING = ["uint64", "address", "address", "uint256"];
const mode = process.argv[2];
const input = JSON.parse(readFileSync(0, "utf8"));
if (mode === "build") {
  const tree = StandardMerkleTree.of(input, LEAF_ENCODING);
  const proofs = input.map((_, i) => tree.getProof(i));
  console.log(JSON.stringify({ root: tree.root, proofs, dump: tree.dump() }));
} else if (mode === "verify") {
  const valid = StandardMerkleTree.verify(input.root, LEAF_ENCODING, input.value, input.proof);
  console.log(JSON.stringify({ valid }));
} else {
  console.error("usage: node contracts/merkle.mjs build|verify < input.json");
  process.exit(2);
}
