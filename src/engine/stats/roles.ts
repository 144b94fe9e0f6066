// How each parameter tensor trains at a step, for the statistics frames (src/protocol/stats.ts `role`): the panel
// shows it, and a frozen tensor's zero gradient and update are then read as "frozen", not as a dead layer.
import type { TensorRole } from '../../protocol/stats';
import { isLoraParam } from '../train/lora';

/** Adapter modules' parameters are named `<block>.adapter_<site>.…` (src/engine/nn/adapter.ts). */
export const ADAPTER_MARK = '.adapter_';

/**
 * The role of tensor `name`: frozen first (a frozen adapter or LoRA factor does not train, whatever its kind), then
 * LoRA factors (`.lora_a`/`.lora_b`), adapters, and every other tensor trains.
 */
export function tensorRole(name: string, frozen: boolean): TensorRole {
  if (frozen) return 'frozen';
  if (isLoraParam(name)) return 'lora';
  if (name.includes(ADAPTER_MARK)) return 'adapter';
  return 'trained';
}
