# Trains (or continues) a demo-sized FiD reader on dump.mjs's sets and prints, every --every
# steps, the answer NLL of the test bridge questions with and without their bridge passage.
# Usage: /usr/bin/python3 scripts/reader-probe/train.py --dir /tmp/reader-probe [--steps 30000] [--save-hf DIR]
import argparse, json, os, sys, time
import torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fid import FiD, load_set, load_st, nll, save_hf

ap = argparse.ArgumentParser()
ap.add_argument('--dir', default='/tmp/reader-probe', help="dump.mjs's output")
ap.add_argument('--init', default='scratch', help="'scratch' or a Hugging Face reader directory to continue")
ap.add_argument('--train', default='train', help='training set(s): train (the demo recipe), hard, chain, or several joined by +')
ap.add_argument('--steps', type=int, default=5000); ap.add_argument('--lr', type=float, default=1e-3); ap.add_argument('--bs', type=int, default=16)
ap.add_argument('--every', type=int, default=1000); ap.add_argument('--threads', type=int, default=1)
ap.add_argument('--decoder-layers', type=int, default=0, help='decoder layers of a reader from scratch (0: the demo config)')
ap.add_argument('--encoder-layers', type=int, default=0, help='encoder layers of a reader from scratch (0: the demo config)')
ap.add_argument('--d-model', type=int, default=0, help='width of a reader from scratch (0: the demo config); d_kv = d-model / heads, d_ff = 4 d-model')
ap.add_argument('--heads', type=int, default=0, help='attention heads of a reader from scratch (0: the demo config)')
ap.add_argument('--device', default='auto', help="'auto' (cuda when PyTorch sees a GPU), 'cpu' or 'cuda'")
ap.add_argument('--save-hf', default='', help='write the trained reader here as a Hugging Face directory')
a = ap.parse_args()
torch.set_num_threads(a.threads); torch.manual_seed(0)
meta = json.load(open(f'{a.dir}/meta.json')); c = json.load(open('assets/demo-reader/config.json'))
shape = {'num_decoder_layers': a.decoder_layers, 'num_layers': a.encoder_layers, 'd_model': a.d_model, 'num_heads': a.heads}
for k, v in shape.items():
    if v: assert a.init == 'scratch', 'a model-shape option needs --init scratch'; c[k] = v
if a.d_model or a.heads: c['d_kv'] = c['d_model'] // c['num_heads']; c['d_ff'] = 4 * c['d_model']
dev = torch.device('cuda' if a.device == 'auto' and torch.cuda.is_available() else 'cpu' if a.device == 'auto' else a.device)
print(f"reader: d_model {c['d_model']}, {c['num_heads']} heads, {c['num_layers']}+{c['num_decoder_layers']} layers, d_ff {c['d_ff']}; device {dev}", flush=True)
m = FiD(c)
if a.init == 'scratch':  # Hugging Face's T5 initialisation
    d, f, dk = c['d_model'], c['d_ff'], c['d_kv']
    with torch.no_grad():
        for n, p in m.named_parameters():
            if n.endswith('shared.weight'): p.normal_(0, 1.0)
            elif n.endswith('.q.weight'): p.normal_(0, (d * dk) ** -0.5)
            elif n.endswith('wo.weight'): p.normal_(0, f ** -0.5)
            elif n.endswith('.weight') and p.dim() == 2: p.normal_(0, d ** -0.5)
else:
    m.load_hf(load_st(f'{a.init}/model.safetensors'))
m.to(dev)
parts = [load_set(a.dir, n, meta) for n in a.train.split('+')]  # 'train+chain': the sets one after the other
tr = (torch.cat([x[0] for x in parts]), torch.cat([x[1] for x in parts]))
tests = {'bridge': (load_set(a.dir, 'withB', meta), load_set(a.dir, 'noB', meta)), 'chain': (load_set(a.dir, 'chainT', meta), load_set(a.dir, 'chainN', meta))}
opt = torch.optim.AdamW(m.parameters(), lr=a.lr, weight_decay=0.01)
warm = max(1, a.steps // 20)  # the demo's schedule: linear warm-up over 5%, then linear decay
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warm, max(0.0, (a.steps - s) / (a.steps - warm))))
g = torch.Generator().manual_seed(0); Q = len(tr[0]); perm = torch.randperm(Q, generator=g); pos = 0; t0 = time.time(); run = 0.0

def report(step):
    m.eval(); out = []
    for name, (w, n) in tests.items():
        x, y = nll(m, *w), nll(m, *n); out.append(f'{name}: with {x:.3f} without {y:.3f} worth {y - x:.3f}')
    m.train()
    print(f'step {step} train {run:.3f} | ' + ' | '.join(out) + f' nats ({time.time() - t0:.0f} s)', flush=True)

report(0)
for step in range(1, a.steps + 1):
    if pos + a.bs > Q: perm = torch.randperm(Q, generator=g); pos = 0
    idx = perm[pos:pos + a.bs]; pos += a.bs
    ids, lab = tr[0][idx].to(dev), tr[1][idx].to(dev)
    loss = m(ids, lab).sum() / (lab != -100).sum()  # token mean, as transformers and train-reader
    opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); opt.step(); sched.step()
    run = 0.98 * run + 0.02 * loss.item() if step > 1 else loss.item()
    if step % a.every == 0: report(step)
if a.save_hf: save_hf(m, a.save_hf, c, 'assets/demo-reader/tokenizer.json'); print('saved', a.save_hf)
