"""Core engine benchmark: our Predictor/Session vs segment-anything's SamPredictor, same weights, same process.

Prints a markdown table of:
  * per-click latency on a cached slice (ours: Predictor.decode; reference: SamPredictor.predict),
  * first visit (normalise + hash + encode) vs revisit (normalise + hash + cache hit) of a slice,
    and the whole click on a first vs a revisited slice,
  * precompute throughput for N slices (ours: batched encode_many; reference: a loop of set_image),
  * bytes per cached slice for each variant,
  * PGE-SAM's per-click decode time over plain SAM's,
  * RobustSAM's per-click decode time over plain SAM's, with its prompt-independent
    AMFG features cached per slice (ours) and recomputed on every click (the release's way),
  * SAM-REF's per-click decode time (SAM's decoder + global and local refiners) over plain SAM's.

Usage:  python benchmarks/bench_core.py [--backbone tiny|vit_b] [--device auto] [--slices 64] [--clicks 30]
Speed does not depend on the weights' values, so random initialisation is used (no checkpoint needed).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        out.append(time.perf_counter() - t0)
    return out


def ms(values: list[float]) -> float:
    return 1000 * statistics.median(values)


def main() -> None:
    from segment_anything import SamPredictor

    from pge_sam.models import build_model
    from pge_sam.normalize import Normalization
    from pge_sam.predictor import Predictor
    from pge_sam.prompts import Point, SlicePrompts
    from pge_sam.samples import load_mni
    from pge_sam.session import Session

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="tiny")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--slices", type=int, default=64, help="slices to precompute (at least 17: 8 first visits, "
                    "8 first clicks and one slice for the per-click timings)")
    ap.add_argument("--clicks", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=None)
    args = ap.parse_args()
    if args.slices < 17:
        ap.error(f"--slices {args.slices}: at least 17 are needed (8 first visits, 8 first clicks, 1 clicked slice)")

    torch.manual_seed(0)
    sam_model = build_model(f"sam_{args.backbone}", pretrained=False, device=args.device)
    pge_model = build_model(f"pge_sam_{args.backbone}", pretrained=False, device=args.device)
    pge_model.sam.load_state_dict(sam_model.sam.state_dict())
    robust_model = build_model(f"robust_sam_{args.backbone}", pretrained=False, device=args.device)
    robust_model.sam.load_state_dict(sam_model.sam.state_dict())
    ref_model = build_model(f"sam_ref_{args.backbone}", pretrained=False, device=args.device)
    ref_model.sam.load_state_dict(sam_model.sam.state_dict())
    volume, spacing = load_mni("t1")
    norm = Normalization.percentile()
    vmin, vmax = norm.value_range(volume)
    start = volume.shape[0] // 2 - args.slices // 2
    idx = list(range(start, start + args.slices))
    device = sam_model.device
    print(f"# core benchmark: backbone {args.backbone}, device {device}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, {platform.processor() or platform.machine()}")
    rows: list[tuple[str, str, str, str]] = []

    # --- per-click latency on a cached slice --------------------------------------------------
    labels = np.zeros(volume.shape, np.uint16)
    session = Session(sam_model, volume, labels, axis=0, normalization=norm, prefetch=0)
    pred: Predictor = session.predictor
    z = idx[-1]  # not among the slices visited below
    u8 = session.slice_u8(z)
    feats = pred.features(u8, 0, z)
    prompts = SlicePrompts((Point(116, 98, True),))
    ours = timed(lambda: pred.decode(feats, prompts, u8.shape), args.clicks)
    ref = SamPredictor(sam_model.sam)
    ref.set_image(np.repeat(u8[:, :, None], 3, 2))
    point = np.array([[98, 116]])
    theirs = timed(lambda: ref.predict(point_coords=point, point_labels=np.array([1]), multimask_output=True),
                   args.clicks)
    rows.append(("click on cached slice (decode)", f"{ms(ours):.1f} ms", f"{ms(theirs):.1f} ms (SamPredictor.predict)",
                 f"{ms(ours) / ms(theirs):.2f}x"))

    # --- first visit vs revisit --------------------------------------------------------------------
    first_fetch, re_fetch, first_click, re_click = [], [], [], []
    for zz in idx[:8]:
        t0 = time.perf_counter()
        pred.features(session.slice_u8(zz), 0, zz)
        first_fetch.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        pred.features(session.slice_u8(zz), 0, zz)
        re_fetch.append(time.perf_counter() - t0)
    calls_before = pred.encoder_calls
    for zz in idx[8:16]:
        first_click.append(session.add_point((zz, 116, 98)).seconds)
        re_click.append(session.add_point((zz, 116, 100)).seconds)
    assert pred.encoder_calls == calls_before + 8, \
        f"a revisit ran the encoder ({pred.encoder_calls - calls_before} calls)"
    rows.append(("slice features: first visit (encode)", f"{ms(first_fetch):.1f} ms", "", ""))
    rows.append(("slice features: revisit (cache hit)", f"{ms(re_fetch):.2f} ms", "",
                 f"{100 * ms(re_fetch) / ms(first_fetch):.1f}% of first visit (goal <= 5%)"))
    rows.append(("whole click: first visit / revisit", f"{ms(first_click):.1f} / {ms(re_click):.1f} ms", "",
                 f"{100 * ms(re_click) / ms(first_click):.0f}%"))

    # --- precompute throughput ---------------------------------------------------------------------
    pred.cache.clear()
    batch = Predictor(sam_model, batch_size=args.batch_size)
    jobs = [(lambda zz=zz: (session.slice_u8(zz), 0, zz)) for zz in idx]
    t0 = time.perf_counter()
    batch.encode_many(jobs)
    t_ours = time.perf_counter() - t0
    slices = [session.slice_u8(zz) for zz in idx]
    t0 = time.perf_counter()
    for s in slices:
        ref.set_image(np.repeat(s[:, :, None], 3, 2))
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t_ref = time.perf_counter() - t0
    rows.append((f"precompute {len(idx)} slices (batch {batch.batch_size})", f"{len(idx) / t_ours:.1f} slices/s",
                 f"{len(idx) / t_ref:.1f} slices/s (set_image loop)", f"{t_ref / t_ours:.2f}x faster"))

    # --- bytes per slice ----------------------------------------------------------------------------------
    for model in (sam_model, pge_model, robust_model, ref_model):
        p = Predictor(model)
        entry = p.features(slices[0], 0, idx[0])
        nbytes = sum(t.element_size() * t.nelement() for t in entry.values())
        shapes = ", ".join(f"{k} {tuple(v.shape)} {str(v.dtype).removeprefix('torch.')}" for k, v in entry.items())
        rows.append((f"bytes per cached slice: {model.name}", f"{nbytes / 1024:.0f} KiB", shapes, ""))

    # --- PGE per-click overhead ------------------------------------------------------------------------
    p_sam, p_pge = Predictor(sam_model), Predictor(pge_model)
    f_sam, f_pge = p_sam.features(u8, 0, z), p_pge.features(u8, 0, z)
    prev = p_sam.decode(f_sam, prompts, u8.shape).low_res
    two = SlicePrompts((Point(116, 98, True), Point(100, 60, False)))
    t_sam = timed(lambda: p_sam.decode(f_sam, two, u8.shape, mask_input=prev), args.clicks)
    t_pge = timed(lambda: p_pge.decode(f_pge, two, u8.shape, mask_input=prev), args.clicks)
    rows.append(("click decode: pge_sam vs sam", f"{ms(t_pge):.1f} ms", f"{ms(t_sam):.1f} ms",
                 f"{ms(t_pge) / ms(t_sam):.2f}x (goal <= 3x)"))
    added = sum(p.numel() for p in pge_model.pge.parameters())
    rows.append(("PGE parameters added", f"{added / 1e6:.3f} M",
                 f"SAM {sum(p.numel() for p in sam_model.sam.parameters()) / 1e6:.2f} M", ""))

    # --- RobustSAM per-click cost: AMFG cached per slice vs recomputed per click ------------------------
    p_rob = Predictor(robust_model)
    f_rob = p_rob.features(u8, 0, z)
    t_rob = timed(lambda: p_rob.decode(f_rob, two, u8.shape, mask_input=prev), args.clicks)
    with torch.inference_mode():
        embedding, early = robust_model.encode_backbone(p_rob.preprocess([u8]))

    def release_click():  # the release runs the two image-side AMFG branches inside every decoder call
        with torch.inference_mode():
            fresh = dict(f_rob, robust_features=robust_model.robust.image_features(embedding, early)[0])
        return p_rob.decode(fresh, two, u8.shape, mask_input=prev)

    t_release = timed(release_click, args.clicks)
    rows.append(("click decode: robust_sam (AMFG cached) vs sam", f"{ms(t_rob):.1f} ms", f"{ms(t_sam):.1f} ms",
                 f"{ms(t_rob) / ms(t_sam):.2f}x"))
    rows.append(("click decode: robust_sam, AMFG recomputed per click (release)", f"{ms(t_release):.1f} ms",
                 f"{ms(t_rob):.1f} ms (cached)", f"caching saves {1 - ms(t_rob) / ms(t_release):.0%}"))
    added = sum(p.numel() for p in robust_model.robust.parameters())
    rows.append(("RobustSAM parameters added", f"{added / 1e6:.3f} M", "", ""))

    # --- SAM-REF per-click cost: SAM's decoder, then the global and the local refiner, on every click ------------
    # The refiners' last convolutions are zero-initialised (random weights elsewhere): they still run, so the timing
    # is a trained model's. SAM-REF's feedback is its own first-click low_res: logits + its error map (2 channels).
    p_ref = Predictor(ref_model)
    f_ref = p_ref.features(u8, 0, z)
    prev_ref = p_ref.decode(f_ref, prompts, u8.shape).low_res
    assert prev_ref.shape[1] == 2, f"sam_ref's feedback has {prev_ref.shape[1]} channels, expected 2"
    t_ref = timed(lambda: p_ref.decode(f_ref, two, u8.shape, mask_input=prev_ref), args.clicks)
    rows.append(("click decode: sam_ref vs sam", f"{ms(t_ref):.1f} ms", f"{ms(t_sam):.1f} ms",
                 f"{ms(t_ref) / ms(t_sam):.2f}x (goal <= 3x)"))
    added = sum(p.numel() for p in ref_model.ref.parameters())
    rows.append(("SAM-REF parameters added", f"{added / 1e6:.3f} M", "paper: +0.7 M (vit_h)", ""))

    print("\n| measure | ours | reference | ratio |\n| --- | --- | --- | --- |")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
