"""live_inference.py: play a trained world model live with the keyboard and the mouse.

    python live_inference.py --ckpt runs/demo/wm --context runs/demo/tokens/bw_seed_3.npz
    python live_inference.py --ckpt runs/demo/wm --context clip.npz --record sessions/   # keep the session
    python live_inference.py --ckpt runs/demo/wm --context clip.npz --script actions.json --frames 64 --out out/

Controls (GF's mapping, actions.keys_to_record, the same as blockworld --play): hold W/A/S/D to
move, Space jump, Shift sneak, Ctrl sprint; the mouse (captured) or the arrow keys look around.
R resets to the context, G toggles greedy / temperature sampling, [ and ] lower / raise the
temperature, P pauses, Esc quits.

The context (an .npz clip, a video or an image, as in inference.py) warms the model up: its frames
and recorded actions fill the hidden state and the temporal buffer (rollout.warm_up); from then on
the state persists. Each frame: events -> held keys + mouse -> a GF transition -> encoded with the
checkpoint's edges (actions.encode_records) -> one model step -> one VQ decode. The loop paces
itself to --fps and says (HUD + console) when the model cannot keep up.

--record DIR saves the session as a GF-layout clip (DIR/video/<stem>.mp4 + DIR/metadata/<stem>.json,
record 0 zero deltas, record i = frame i-1 -> i): `preprocess.py --check DIR` accepts it and
`inference.py --actions DIR/metadata/<stem>.json` (same context) replays it. A reset starts a new clip.

Headless (--frames N --out DIR, optionally --script GF.json whose records "1".."N" drive the N steps,
idle after its end) runs the same loop body with no window, unpaced, and writes live.mp4, frames.npy
(N, 72, 128, 3) uint8 and tokens.npy (N, 18, 32); the exit summary gives the achievable FPS.
"""
import argparse
import json
import os
import sys
import time
from contextlib import nullcontext

import numpy as np
import torch

os.environ.setdefault('PYGAME_HIDE_SUPPORT_PROMPT', '1')

import actions as A
import inference as I
from rollout import carry_out, next_tokens, snap_latent, warm_up

# ---- defaults (flags override) ----
FPS = 16                 # GF's rate: the loop paces itself to it
SCALE = 6                # window = 128x72 x SCALE
CONTEXT_FRAMES = 8
TEMPERATURE = 0.8        # used when G switches to sampling
TEMPERATURE_STEP = 0.1   # [ and ] change it by this much
TOP_K = 0
TOP_P = 1.0
SEED = 0
HUD_FONT_SIZE = 18
SLOW_REPORT_S = 5.0      # console "cannot keep up" messages at most this often
SLOW_WINDOW = 16         # frames averaged for the HUD's speed figures
DEVICE = 'auto'


# ----------------------------------------------------------------------------- the model side

class Engine:
    """World model + VQ-VAE at batch 1: state, current tokens, and one step = action -> next frame."""

    def __init__(self, model, vq, edges, context, sampling='greedy', temperature=TEMPERATURE, top_k=TOP_K,
                 top_p=TOP_P, seed=SEED, compile=False, latent_snap=None):
        self.model, self.vq, self.edges, self.context = model.eval(), vq.eval(), edges, context
        self.device = next(model.parameters()).device
        self.sampling, self.temperature, self.top_k, self.top_p, self.seed = sampling, temperature, top_k, top_p, seed
        self.latent_snap = model.config.latent_snap if latent_snap is None else latent_snap
        self.cuda = self.device.type == 'cuda'
        self.names = A.ENCODINGS[edges['encoding']]
        self.step_fn, self.compiled = model.step, False
        if compile:
            # on CUDA 'reduce-overhead' runs the step as a CUDA graph; any failure falls back to eager
            try:
                self.step_fn = torch.compile(model.step, mode='reduce-overhead' if self.cuda else 'default')
                self.compiled = True
            except Exception as e:
                print(f"torch.compile unavailable ({e}); running eagerly", file=sys.stderr)
        self.reset()
        if self.compiled:  # compile now (a step from the context), so play and its timings start warm
            t0 = time.perf_counter()
            for _ in range(2):
                self.step(dict(ws=0, ad=0, scs=0, yaw_deg=0.0, pitch_deg=0.0))
            if self.compiled:
                print(f"compiled the step in {time.perf_counter() - t0:.1f} s")
            self.reset()

    def amp(self):
        return torch.autocast('cuda', dtype=torch.bfloat16) if self.cuda else nullcontext()

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize(self.device)

    @torch.inference_mode()
    def decode(self, tokens):
        """(1, H, W) tokens -> (72, 128, 3) uint8: one frame per step."""
        with self.amp():
            return I.to_uint8(self.vq.decode_code(tokens))[0]

    @torch.inference_mode()
    def reset(self):
        """Back to the context: warm-up on its frames and recorded actions, fresh sampling RNG."""
        ctx = self.context.tokens[None].to(self.device)
        with self.amp():
            self.state = warm_up(self.model, ctx, self.context.actions[None].to(self.device, torch.float32))
        self.tokens = ctx[:, -1]
        self.latent = None   # a latent model's first step reads the context frame's codes, then its own latents
        self.frame = self.decode(self.tokens)
        self.generator = torch.Generator(self.device).manual_seed(self.seed)
        return self.frame

    def encode(self, record):
        """A transition (ws, ad, scs, yaw_deg, pitch_deg) -> (A,) float32, the checkpoint's encoding."""
        return A.encode_records([record], self.edges)[0]

    def _model_step(self, action):
        if self.compiled and self.cuda:
            torch.compiler.cudagraph_mark_step_begin()
        with self.amp():
            logits, self.state = self.step_fn(self.tokens, action, self.state, latent_t=self.latent)
        return logits

    @torch.inference_mode()
    def step(self, record):
        """One frame. Returns (frame uint8 (72, 128, 3), action (A,), model ms, decode ms)."""
        a = self.encode(record)
        action = torch.from_numpy(a)[None].to(self.device)
        t0 = time.perf_counter()
        offset = self.state.warp_offset
        try:
            logits = self._model_step(action)
        except Exception as e:
            if not self.compiled:
                raise
            print(f"compiled step failed ({type(e).__name__}: {e}); running eagerly", file=sys.stderr)
            self.step_fn, self.compiled = self.model.step, False
            logits = self._model_step(action)
        mode = self.sampling if self.temperature > 0 else 'greedy'
        self.tokens = next_tokens(self.model, logits, self.tokens, action, dict(
            mode=mode, temperature=self.temperature, top_k=self.top_k, top_p=self.top_p), self.generator, offset)
        if self.state.latent is not None:   # a latent model's next input, fed back as rollout.rollout does
            self.latent = snap_latent(self.model, self.state.latent, self.tokens, self.latent_snap, action=action)
            self.state = carry_out(self.model, self.state, self.state.latent, self.latent, action)
        self.sync()
        t1 = time.perf_counter()
        self.frame = self.decode(self.tokens)
        self.sync()
        return self.frame, a, (t1 - t0) * 1e3, (time.perf_counter() - t1) * 1e3

    def active_names(self, action):
        """Names of the non-zero entries of an encoded action (v4: with their values)."""
        if self.edges['encoding'] == 'v5':
            return [n for n, v in zip(self.names, action) if v]
        return [f"{n}={v:+.2f}" for n, v in zip(self.names, action) if v]


# ----------------------------------------------------------------------------- session recording

class Recorder:
    """The session as GF-layout clips: one clip per run between resets."""

    def __init__(self, out_dir, info=None, stem=None, fps=FPS):
        self.out_dir, self.info, self.fps = out_dir, dict(info or {}), fps
        self.stem = stem or time.strftime('live_%Y%m%d_%H%M%S')
        self.segment, self.frames, self.records, self.saved = 0, [], [], []

    def start(self, frame):
        """A new clip whose frame 0 is `frame` (record 0: zero deltas; absolute angles start at 0)."""
        self.save()
        self.frames = [frame]
        self.records = [dict(ws=0, ad=0, scs=0, pitch=0.0, yaw=0.0, pitch_delta=0.0, yaw_delta=0.0, pos=[0, 0, 0])]

    def add(self, frame, rec):
        """Frame i and record i: the transition i-1 -> i in GF units (deltas = degrees / 15)."""
        prev = self.records[-1]
        self.records.append(dict(ws=int(rec['ws']), ad=int(rec['ad']), scs=int(rec['scs']),
                                 pitch=prev['pitch'] + rec['pitch_deg'], yaw=prev['yaw'] + rec['yaw_deg'],
                                 pitch_delta=rec['pitch_deg'] / A.DEG_PER_UNIT,
                                 yaw_delta=rec['yaw_deg'] / A.DEG_PER_UNIT, pos=[0, 0, 0]))
        self.frames.append(frame)

    def save(self):
        """Write the current clip (if it has a transition). Returns (video, metadata) paths or None."""
        import blockworld
        if len(self.frames) < 2:
            return None
        stem = self.stem + (f'_{self.segment}' if self.segment else '')
        self.segment += 1
        video = os.path.join(self.out_dir, 'video', stem + '.mp4')
        meta = os.path.join(self.out_dir, 'metadata', stem + '.json')
        os.makedirs(os.path.dirname(video), exist_ok=True)
        os.makedirs(os.path.dirname(meta), exist_ok=True)
        I.write_mp4(video, np.stack(self.frames), self.fps)
        blockworld.write_json(meta, dict(biome='unknown', initial_weather='unknown', start_time='unknown',
                                         actions={str(i): r for i, r in enumerate(self.records)},
                                         live_inference=self.info))  # readers ignore unknown keys
        self.frames, self.records = [], []
        self.saved.append((video, meta))
        print(f"recorded {stem}: {video} + {meta}")
        i = self.info
        if i.get('context'):
            print(f"  replay: python inference.py --ckpt {i.get('ckpt')} --context {i['context']} --start "
                  f"{i.get('start', 0)} --context-frames {i.get('context_frames')} --actions {meta} --out <dir>")
        return video, meta


# ----------------------------------------------------------------------------- timing

class Stats:
    def __init__(self):
        self.model_ms, self.decode_ms, self.loop_ms = [], [], []
        self.t_start = None
        self.t_end = None

    def add(self, model_ms, decode_ms):
        if self.t_start is None:
            self.t_start = time.perf_counter() - (model_ms + decode_ms) / 1e3
        self.model_ms.append(model_ms)
        self.decode_ms.append(decode_ms)
        self.t_end = time.perf_counter()

    def recent(self, n=SLOW_WINDOW):
        """Mean model and decode ms over the last n steps."""
        if not self.model_ms:
            return 0.0, 0.0
        return float(np.mean(self.model_ms[-n:])), float(np.mean(self.decode_ms[-n:]))

    def summary(self):
        n = len(self.model_ms)
        if not n:
            return dict(frames=0)
        step = np.array(self.model_ms) + np.array(self.decode_ms)
        wall = max(self.t_end - self.t_start, 1e-9)
        return dict(frames=n, step_mean_ms=float(step.mean()), step_p50_ms=float(np.percentile(step, 50)),
                    step_p99_ms=float(np.percentile(step, 99)), model_mean_ms=float(np.mean(self.model_ms)),
                    decode_mean_ms=float(np.mean(self.decode_ms)), achieved_fps=n / wall,
                    max_fps=1e3 / float(step.mean()))

    def format(self):
        s = self.summary()
        if not s['frames']:
            return "no frames"
        return (f"{s['frames']} frames; step (model + VQ decode) mean {s['step_mean_ms']:.1f} ms, "
                f"p50 {s['step_p50_ms']:.1f} ms, p99 {s['step_p99_ms']:.1f} ms (model {s['model_mean_ms']:.1f}, "
                f"decode {s['decode_mean_ms']:.1f}); achieved {s['achieved_fps']:.1f} FPS "
                f"(step-bound {s['max_fps']:.1f} FPS)")


# ----------------------------------------------------------------------------- the loop body

class LiveLoop:
    """One iteration of play, shared by the window and headless modes: events -> action -> model
    step -> frame. Feed it pygame events (real or posted); `record` overrides the keys (scripts)."""

    def __init__(self, engine, recorder=None, stats=None):
        self.engine, self.recorder, self.stats = engine, recorder, stats or Stats()
        self.held = A.HeldKeys()
        self.mouse = [0.0, 0.0]
        self.paused = self.quit = False
        self.last = None     # the last tick's result
        self.message = None  # (text, time) of the last command, for the HUD
        if recorder is not None:
            recorder.start(engine.frame)

    def handle(self, events):
        """Update held keys, mouse motion and the R/G/[/]/P/Esc commands from pygame events."""
        import pygame
        e = self.engine
        for ev in events:
            if ev.type == pygame.QUIT:
                self.quit = True
            elif ev.type == pygame.MOUSEMOTION:
                self.mouse[0] += ev.rel[0]
                self.mouse[1] += ev.rel[1]
            elif self.held.update(ev):  # a control key: W/A/S/D, Space, Shift, Ctrl, arrows
                continue
            elif ev.type == pygame.KEYDOWN:
                if ev.key == pygame.K_ESCAPE:
                    self.quit = True
                elif ev.key == pygame.K_r:
                    e.reset()
                    if self.recorder is not None:
                        self.recorder.start(e.frame)
                    self.note('reset to the context')
                elif ev.key == pygame.K_g:
                    e.sampling = 'sample' if e.sampling == 'greedy' else 'greedy'
                    self.note(f"sampling: {e.sampling}" + (f" T={e.temperature:.2f}" if e.sampling == 'sample' else ''))
                elif ev.key in (pygame.K_LEFTBRACKET, pygame.K_RIGHTBRACKET):
                    d = TEMPERATURE_STEP if ev.key == pygame.K_RIGHTBRACKET else -TEMPERATURE_STEP
                    e.temperature = round(min(3.0, max(0.1, e.temperature + d)), 2)
                    self.note(f"temperature {e.temperature:.2f}" + (' (used when G switches to sampling)'
                                                                    if e.sampling == 'greedy' else ''))
                elif ev.key == pygame.K_p:
                    self.paused = not self.paused
                    self.note('paused' if self.paused else 'resumed')

    def note(self, text):
        print(text)
        self.message = (text, time.perf_counter())

    def tick(self, events=(), record=None):
        """Handle events, then (unless paused or quitting) step once. Returns a dict (frame, record,
        action, names, model_ms, decode_ms) or None when no step was taken."""
        self.handle(events)
        if self.quit or self.paused:
            self.mouse = [0.0, 0.0]  # motion while paused must not turn the camera on resume
            return None
        rec = record if record is not None else A.keys_to_record(self.held.held, *self.mouse)
        self.mouse = [0.0, 0.0]
        frame, action, model_ms, decode_ms = self.engine.step(rec)
        self.stats.add(model_ms, decode_ms)
        if self.recorder is not None:
            self.recorder.add(frame, rec)
        self.last = dict(frame=frame, record=rec, action=action, names=self.engine.active_names(action),
                         tokens=self.engine.tokens[0].cpu(), model_ms=model_ms, decode_ms=decode_ms)
        return self.last


# ----------------------------------------------------------------------------- window mode

class Pacer:
    """Sleep to a fixed frame rate and tell when the work of a frame does not fit its budget."""

    def __init__(self, fps):
        self.fps = fps
        self.budget = 1.0 / fps if fps > 0 else 0.0
        self.next = time.perf_counter()
        self.busy = None  # EMA of the seconds of work per frame
        self.late = 0
        self.last_report = -1e9

    def wait(self, busy):
        """busy: seconds this frame's work took. Sleeps out the rest of the frame; returns True while
        the average work per frame is over budget (the model cannot keep up)."""
        self.busy = busy if self.busy is None else self.busy + (busy - self.busy) / SLOW_WINDOW
        if not self.budget:
            return False
        now = time.perf_counter()
        self.next += self.budget
        if now > self.next:  # behind: no burst of frames to catch up
            self.late += 1
            self.next = now
        else:
            time.sleep(self.next - now)
        return self.busy > self.budget


def draw_hud(screen, font, loop, clock, pacer, slow):
    import pygame
    e, last = loop.engine, loop.last
    model_ms, decode_ms = loop.stats.recent()
    mode = f"sample T={e.temperature:.2f}" if e.sampling == 'sample' else e.sampling
    lines = [f"{clock.get_fps():4.1f} FPS | model {model_ms:5.1f} ms | decode {decode_ms:4.1f} ms | {mode}",
             ' '.join(last['names']) if last else '(no step yet)']
    if loop.paused:
        lines.append('PAUSED (P)')
    if loop.recorder is not None:
        lines.append(f"REC {len(loop.recorder.frames)} frames")
    if slow:
        lines.append(f"SLOW: {pacer.busy * 1e3:.0f} ms per frame > {pacer.budget * 1e3:.0f} ms at {pacer.fps:g} FPS")
    if loop.message and time.perf_counter() - loop.message[1] < 3.0:
        lines.append(loop.message[0])
    surfs = [font.render(t, True, (255, 90, 90) if t.startswith('SLOW') else (255, 255, 255)) for t in lines]
    w = max(s.get_width() for s in surfs) + 10
    h = sum(s.get_height() for s in surfs) + 8
    bg = pygame.Surface((w, h), pygame.SRCALPHA)
    bg.fill((0, 0, 0, 150))
    screen.blit(bg, (0, 0))
    y = 4
    for s in surfs:
        screen.blit(s, (5, y))
        y += s.get_height()


def run_window(loop, fps=FPS, scale=SCALE, max_frames=None, screenshot=None):
    """The interactive loop: a pygame window, the mouse captured, paced to fps. max_frames: quit after
    that many frames (screenshot: save the window to this PNG on the last one)."""
    import pygame
    pygame.display.init()  # not pygame.init(): no audio device is needed
    pygame.font.init()
    H, W = loop.engine.frame.shape[:2]
    screen = pygame.display.set_mode((W * scale, H * scale))
    pygame.display.set_caption('Ochre live - W/A/S/D Space Shift Ctrl, mouse/arrows look, '
                               'R reset, G greedy/sample, [ ] temperature, P pause, Esc quit')
    pygame.event.set_grab(True)  # relative mouse motion, the pointer stays in the window
    pygame.mouse.set_visible(False)
    font = pygame.font.Font(None, HUD_FONT_SIZE + 6)
    clock, pacer = pygame.time.Clock(), Pacer(fps)
    slow, frames = False, 0
    try:
        while not loop.quit and (max_frames is None or frames < max_frames):
            t0 = time.perf_counter()
            out = loop.tick(pygame.event.get())
            frame = out['frame'] if out else loop.engine.frame
            surf = pygame.surfarray.make_surface(frame.swapaxes(0, 1))
            screen.blit(pygame.transform.scale(surf, (W * scale, H * scale)), (0, 0))
            draw_hud(screen, font, loop, clock, pacer, slow)
            pygame.display.flip()
            clock.tick()
            frames += 1
            if screenshot and frames == max_frames:
                pygame.image.save(screen, screenshot)
                print(f"screenshot: {screenshot}")
            slow = pacer.wait(time.perf_counter() - t0) and not loop.paused
            now = time.perf_counter()
            if slow and now - pacer.last_report > SLOW_REPORT_S:
                m, d = loop.stats.recent()
                print(f"the model cannot keep up: {pacer.busy * 1e3:.0f} ms per frame ({m:.0f} model + {d:.0f} "
                      f"decode) > {pacer.budget * 1e3:.0f} ms at {fps:g} FPS; {pacer.late} late frames so far")
                pacer.last_report = now
    finally:
        pygame.event.set_grab(False)
        pygame.quit()


# ----------------------------------------------------------------------------- headless mode

def load_script(path):
    """GF per-frame record JSON -> transitions (ws, ad, scs, yaw_deg, pitch_deg): records "1".."N"."""
    import gfdata
    with open(path) as f:
        meta = I.gf_records(json.load(f), path)
    tr = gfdata.transitions(meta)
    return [dict(ws=int(tr['ws'][i]), ad=int(tr['ad'][i]), scs=int(tr['scs'][i]), yaw_deg=float(tr['yaw_deg'][i]),
                 pitch_deg=float(tr['pitch_deg'][i])) for i in range(len(tr['ws']))]


def run_headless(loop, frames, script=None, events=None):
    """N steps with no window and no pacing: script[i] drives step i (idle after its end);
    without a script, `events()` (e.g. pygame.event.get) supplies events each step.
    Returns (frames uint8 (N, 72, 128, 3), tokens (N, H, W))."""
    idle = dict(ws=0, ad=0, scs=0, yaw_deg=0.0, pitch_deg=0.0)
    out_f, out_t = [], []
    for i in range(frames):
        rec = (script[i] if i < len(script) else idle) if script is not None else None
        r = loop.tick(events() if events else (), record=rec)
        if r is None:
            break
        out_f.append(r['frame'])
        out_t.append(r['tokens'])
    H, W = loop.engine.frame.shape[:2]
    return (np.stack(out_f) if out_f else np.zeros((0, H, W, 3), np.uint8),
            torch.stack(out_t) if out_t else torch.zeros(0, *loop.engine.tokens.shape[1:], dtype=torch.long))


# ----------------------------------------------------------------------------- CLI

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split('\n\n', 1)[1])
    I.add_model_args(p, CONTEXT_FRAMES)
    p.add_argument('--fps', type=float, default=FPS, help='frame rate the window paces itself to')
    p.add_argument('--scale', type=int, default=SCALE, help='window scale')
    p.add_argument('--record', default=None, metavar='OUT_DIR', help='save the session as a GF-layout clip here')
    p.add_argument('--device', default=DEVICE, help='auto | cpu | cuda')
    p.add_argument('--compile', action='store_true', help='torch.compile the step (CUDA: with CUDA graphs)')
    I.add_sampling_args(p, 'greedy', TEMPERATURE, TOP_K, TOP_P, SEED, 'initial mode (G toggles)')
    p.add_argument('--script', default=None, help='headless: GF per-frame record JSON driving the steps')
    p.add_argument('--frames', type=int, default=None, help='headless: number of steps (window: quit after)')
    p.add_argument('--out', default=None, help='headless: output folder (live.mp4, frames.npy, tokens.npy)')
    p.add_argument('--screenshot', default=None, help='window: save the window to this PNG at the last --frames')
    args = p.parse_args(argv)
    args.headless = args.out is not None or args.script is not None
    if args.headless and (args.out is None or args.frames is None):
        p.error('headless mode needs --frames N and --out DIR (and optionally --script)')
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if I.start(args) is not None:
        return 2
    try:
        model, vq, edges, ck = I.load(args.ckpt, args.vqvae, args.device)
        I.set_rollout_options(model, ck['path'], flow_round=args.flow_round)
        context = I.load_context(args.context, vq, edges, args.start, args.context_frames, future=0)
        script = load_script(args.script) if args.script else None
    except (ValueError, FileNotFoundError) as e:
        print(f"ERROR {e}", file=sys.stderr)
        return 2
    except Exception as e:  # gfdata.ClipError from a bad script
        print(f"ERROR {e}", file=sys.stderr)
        return 2
    engine = Engine(model, vq, edges, context, args.sampling, args.temperature, args.top_k, args.top_p, args.seed,
                    args.compile, args.latent_snap)
    print(f"{ck['path']} on {engine.device}: {edges['encoding']} actions, yaw edges {edges['yaw']}, pitch edge "
          f"{edges['pitch']}; context {context.kind} {args.context} ({len(context.tokens)} frames from {args.start})"
          + ('; compiled' if engine.compiled else '') + I.rollout_note(model))
    recorder = None
    if args.record:
        recorder = Recorder(args.record, dict(ckpt=ck['path'], context=args.context, start=args.start,
                                              context_frames=len(context.tokens), edges=edges, fps=args.fps))
    loop = LiveLoop(engine, recorder)
    try:
        if args.headless:
            frames, tokens = run_headless(loop, args.frames, script)
            os.makedirs(args.out, exist_ok=True)
            np.save(os.path.join(args.out, 'frames.npy'), frames)
            np.save(os.path.join(args.out, 'tokens.npy'), tokens.numpy().astype(np.uint16))
            codec = I.write_mp4(os.path.join(args.out, 'live.mp4'), frames, args.fps)
            print(f"{len(frames)} frames: {os.path.join(args.out, 'live.mp4')} ({codec}), frames.npy, tokens.npy")
        else:
            run_window(loop, args.fps, args.scale, args.frames, args.screenshot)
    finally:
        if recorder is not None:
            recorder.save()
        print('summary: ' + loop.stats.format())
    return 0


if __name__ == '__main__':
    sys.exit(main())
