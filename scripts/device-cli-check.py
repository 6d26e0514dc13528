#!/usr/bin/env python3
"""tessera-cli end to end on the GPU machine: `generate` with the default backend choice on every
staged golden case. The exact CUDA mode (TESSERA_CUDA_PRECISION=fp32) must reproduce the
reference's 16 greedy tokens; the default bf16 mode reports how many leading tokens agree.
Exits 1 when the CLI picks another backend than CUDA, fails, or the exact mode differs.

    device-cli-check.py --cli BIN --golden DIR [--models mini-mha,mini-mla]
"""
import argparse
import json
import os
import subprocess
import sys


def generate(cli, model, conversation, env):
    cmd = [cli, "generate", "--model", model, "--conversation", conversation, "--temperature", "0",
           "--repetition-penalty", "1", "--max-new-tokens", "16", "--json"]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    if run.returncode != 0:
        raise RuntimeError(f"exit {run.returncode}: {run.stderr.strip()[-400:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    ap.add_argument("--golden", required=True)
    ap.add_argument("--models", default="mini-mha,mini-mla")
    args = ap.parse_args()
    images = os.path.join(args.golden, "images")
    failures = 0
    for model in args.models.split(","):
        model_dir = os.path.join(args.golden, "models", model)
        if not os.path.isdir(model_dir):
            print(f"{model}: not staged, skipped")
            continue
        cases_dir = os.path.join(args.golden, "cases", model)
        for name in sorted(f[:-5] for f in os.listdir(cases_dir) if f.endswith(".json")):
            case = json.load(open(os.path.join(cases_dir, name + ".json")))
            # Image paths in a conversation file are relative to the file: write it beside them.
            conversation = os.path.join(images, f"cli-{model}-{name}.json")
            with open(conversation, "w") as f:
                json.dump({"conversation": case["conversation"], "system_prompt": case["system_prompt"]}, f)
            expected = case["gen_ids"]
            try:
                exact = generate(args.cli, model_dir, conversation, dict(os.environ, TESSERA_CUDA_PRECISION="fp32"))
                fast = generate(args.cli, model_dir, conversation, dict(os.environ))
            except Exception as e:  # noqa: BLE001 - report and go on with the other cases
                print(f"{model}/{name}: FAIL {e}")
                failures += 1
                continue
            agree = next((i for i, (a, b) in enumerate(zip(fast["output_ids"], expected)) if a != b), len(expected))
            ok = exact["backend"] == "cuda" and fast["backend"] == "cuda" and exact["output_ids"] == expected
            failures += 0 if ok else 1
            timings = fast.get("timings", {})
            print(f"{model}/{name}: {'PASS' if ok else 'FAIL'} backend {fast['backend']}, fp32 "
                  f"{'equal' if exact['output_ids'] == expected else 'DIFFERENT'} to the reference's "
                  f"{len(expected)} tokens, bf16 first {agree} equal, "
                  f"ttft {timings.get('ttft_s', 0) * 1e3:.1f} ms")
    print(f"tessera-cli on the GPU: {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
