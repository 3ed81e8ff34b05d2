// Kernel features this machine's kernel lacks (802.1q, bridge VLAN filtering,
// dummy, bonding) and the l2 tier (test/l2, user-mode-linux) has. A test that
// also runs in that tier skips its check here, naming the feature, and fails
// there, where the feature must exist.

/** True inside the l2 tier's user-mode-linux guest (set by test/l2/uml-init.sh). */
export const IN_L2_TIER = process.env.NODE_CNI_L2_INSIDE === '1';

/** Say that this kernel lacks `feature`; inside the l2 tier, throw instead. */
export function missingKernelFeature(feature: string, detail: string): void {
  if (IN_L2_TIER) throw new Error(`the l2 tier's kernel must have ${feature}, but: ${detail}`);
  console.warn(`skipped here: this kernel lacks ${feature} (${detail}); the l2 tier (test/l2, user-mode-linux) runs this test where it exists`);
}
