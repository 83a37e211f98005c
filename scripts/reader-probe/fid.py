# A minimal PyTorch Fusion-in-Decoder on T5 v1.0 (Hugging Face parameter names), to probe how a
# reader of the demo's size learns: about 3x faster than the wasm backend on one core, or on a GPU.
# It gives the project's FidReader's answer NLL to 1e-6 on the shipped reader (README.md here says how to check).
import json, math, os, shutil, struct
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F

def load_st(path):
    b = open(path, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n]); base = 8 + n; out = {}
    for k, v in h.items():
        if k == '__metadata__': continue
        s, e = v['data_offsets']; assert v['dtype'] == 'F32'
        out[k] = torch.from_numpy(np.frombuffer(b[base + s:base + e], dtype=np.float32).copy()).reshape(v['shape'])
    return out

def bucket(rel, bidir, nb=32, maxd=128):
    ret = 0
    if bidir:
        nb //= 2; ret = (rel > 0).long() * nb; rel = rel.abs()
    else:
        rel = -torch.clamp(rel, max=0)
    exact = nb // 2; small = rel < exact
    large = exact + (torch.log(rel.float().clamp(min=1) / exact) / math.log(maxd / exact) * (nb - exact)).long()
    large = torch.clamp(large, max=nb - 1)
    return ret + torch.where(small, rel, large)

class Attn(nn.Module):
    def __init__(s, d, h, dk, bias, bidir):
        super().__init__(); s.h, s.dk, s.bidir = h, dk, bidir
        s.q = nn.Linear(d, h * dk, bias=False); s.k = nn.Linear(d, h * dk, bias=False); s.v = nn.Linear(d, h * dk, bias=False); s.o = nn.Linear(h * dk, d, bias=False)
        s.relative_attention_bias = nn.Embedding(32, h) if bias else None
    def pos(s, ql, kl):
        dev = s.relative_attention_bias.weight.device
        rel = torch.arange(kl, device=dev)[None, :] - torch.arange(ql, device=dev)[:, None]
        return s.relative_attention_bias(bucket(rel, s.bidir)).permute(2, 0, 1)[None]
    def forward(s, x, kv, mask_bias, pos_bias):
        B, T, _ = x.shape; S = kv.shape[1]
        q = s.q(x).view(B, T, s.h, s.dk).transpose(1, 2); k = s.k(kv).view(B, S, s.h, s.dk).transpose(1, 2); v = s.v(kv).view(B, S, s.h, s.dk).transpose(1, 2)
        sc = q @ k.transpose(-1, -2)
        if pos_bias is not None: sc = sc + pos_bias
        sc = sc + mask_bias
        return s.o((sc.softmax(-1) @ v).transpose(1, 2).reshape(B, T, -1))

class LN(nn.Module):
    def __init__(s, d): super().__init__(); s.weight = nn.Parameter(torch.ones(d))
    def forward(s, x): return s.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)

class FF(nn.Module):
    def __init__(s, d, f): super().__init__(); s.wi = nn.Linear(d, f, bias=False); s.wo = nn.Linear(f, d, bias=False)
    def forward(s, x): return s.wo(F.relu(s.wi(x)))

class FiD(nn.Module):
    def __init__(s, c):
        super().__init__(); d, h, dk, f = c['d_model'], c['num_heads'], c['d_kv'], c['d_ff']; s.d = d
        s.shared = nn.Embedding(c['vocab_size'], d)
        s.enc = nn.ModuleList([nn.ModuleDict(dict(ln0=LN(d), sa=Attn(d, h, dk, i == 0, True), ln1=LN(d), ff=FF(d, f))) for i in range(c['num_layers'])])
        s.dec = nn.ModuleList([nn.ModuleDict(dict(ln0=LN(d), sa=Attn(d, h, dk, i == 0, False), ln1=LN(d), ca=Attn(d, h, dk, False, True), ln2=LN(d), ff=FF(d, f))) for i in range(c['num_decoder_layers'])])
        s.enc_ln = LN(d); s.dec_ln = LN(d)
    def load_hf(s, w):
        m = hf_table(s)
        missing = [k for k in w if k not in m]
        assert not missing, missing
        with torch.no_grad():
            for k, p in m.items(): p.copy_(w[k])
    def encode(s, ids):  # ids [B, N, L]
        B, N, L = ids.shape; x = s.shared(ids.view(B * N, L)); mask = ids.view(B * N, L) != 0
        mb = (~mask)[:, None, None, :].float() * -1e9; pb = s.enc[0]['sa'].pos(L, L)
        for b in s.enc:
            y = b['ln0'](x); x = x + b['sa'](y, y, mb, pb); x = x + b['ff'](b['ln1'](x))
        return s.enc_ln(x).view(B, N * L, s.d), mask.view(B, N * L)
    def forward(s, ids, labels):  # labels [B, A], -100 pad; returns per-question summed NLL
        h, mask = s.encode(ids); B, A = labels.shape
        lab = labels.clamp(min=0); dec_in = torch.cat([torch.zeros(B, 1, dtype=torch.long, device=lab.device), lab[:, :-1]], 1)
        x = s.shared(dec_in); causal = torch.triu(torch.full((A, A), -1e9, device=lab.device), 1)[None, None]; pb = s.dec[0]['sa'].pos(A, A) + causal
        cm = (~mask)[:, None, None, :].float() * -1e9
        for b in s.dec:
            y = b['ln0'](x); x = x + b['sa'](y, y, 0.0, pb); x = x + b['ca'](b['ln1'](x), h, cm, None); x = x + b['ff'](b['ln2'](x))
        logits = (s.dec_ln(x) * s.d ** -0.5) @ s.shared.weight.t()
        nll = F.cross_entropy(logits.reshape(B * A, -1), lab.reshape(-1), reduction='none').view(B, A) * (labels != -100)
        return nll.sum(1)

def load_set(d, name, meta):
    q, n = meta[name]['q'], meta[name]['n']
    ids = torch.from_numpy(np.fromfile(f'{d}/{name}.ids', dtype=np.int32).astype(np.int64)).view(q, n, meta['L'])
    lab = torch.from_numpy(np.fromfile(f'{d}/{name}.lab', dtype=np.int32).astype(np.int64)).view(q, meta['A'])
    return ids, lab

@torch.no_grad()
def nll(model, ids, lab, bs=32):
    dev = model.shared.weight.device
    return torch.cat([model(ids[i:i + bs].to(dev), lab[i:i + bs].to(dev)) for i in range(0, len(ids), bs)]).mean().item()

def hf_table(s):
    """Hugging Face parameter name -> this model's parameter."""
    m = {'shared.weight': s.shared.weight, 'encoder.final_layer_norm.weight': s.enc_ln.weight, 'decoder.final_layer_norm.weight': s.dec_ln.weight}
    for i, b in enumerate(s.enc):
        p = f'encoder.block.{i}.layer.'
        m[p + '0.layer_norm.weight'] = b['ln0'].weight; m[p + '1.layer_norm.weight'] = b['ln1'].weight
        for n in 'qkvo': m[p + f'0.SelfAttention.{n}.weight'] = getattr(b['sa'], n).weight
        if b['sa'].relative_attention_bias is not None: m[p + '0.SelfAttention.relative_attention_bias.weight'] = b['sa'].relative_attention_bias.weight
        m[p + '1.DenseReluDense.wi.weight'] = b['ff'].wi.weight; m[p + '1.DenseReluDense.wo.weight'] = b['ff'].wo.weight
    for i, b in enumerate(s.dec):
        p = f'decoder.block.{i}.layer.'
        for j, ln in enumerate(['ln0', 'ln1', 'ln2']): m[p + f'{j}.layer_norm.weight'] = b[ln].weight
        for n in 'qkvo': m[p + f'0.SelfAttention.{n}.weight'] = getattr(b['sa'], n).weight; m[p + f'1.EncDecAttention.{n}.weight'] = getattr(b['ca'], n).weight
        if b['sa'].relative_attention_bias is not None: m[p + '0.SelfAttention.relative_attention_bias.weight'] = b['sa'].relative_attention_bias.weight
        m[p + '2.DenseReluDense.wi.weight'] = b['ff'].wi.weight; m[p + '2.DenseReluDense.wo.weight'] = b['ff'].wo.weight
    return m

def save_hf(m, out_dir, config, tokenizer_path):
    """Writes a Hugging Face directory (model.safetensors, config.json, tokenizer.json)."""
    os.makedirs(out_dir, exist_ok=True)
    tensors = {k: p.detach().cpu().contiguous().numpy().astype(np.float32) for k, p in hf_table(m).items()}
    header, off, blobs = {}, 0, []
    for k in sorted(tensors):
        b = tensors[k].tobytes(); header[k] = {'dtype': 'F32', 'shape': list(tensors[k].shape), 'data_offsets': [off, off + len(b)]}; off += len(b); blobs.append(b)
    h = json.dumps(header).encode(); h += b' ' * ((8 - len(h) % 8) % 8)
    with open(os.path.join(out_dir, 'model.safetensors'), 'wb') as f:
        f.write(struct.pack('<Q', len(h))); f.write(h)
        for b in blobs: f.write(b)
    json.dump(config, open(os.path.join(out_dir, 'config.json'), 'w'), indent=2)
    shutil.copy(tokenizer_path, os.path.join(out_dir, 'tokenizer.json'))
