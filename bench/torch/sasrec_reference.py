#!/usr/bin/env python3
"""A PyTorch SASRec with `basin bench sasrec --quick`'s recipe, to tell a Basin defect from the recipe.

Not a peer of the bench (it does not run from Node): a check written once, kept so that the README's figures for
it can be rerun. Same data, split and protocol as Basin: MovieLens ml-latest-small, per user sorted by time, the
last item the test target, the one before it the validation target (users with fewer than 3 ratings dropped),
training windows of maxLen + 1 items cut consecutively from each user's training sequence; scores over the whole
catalogue with the user's seen items removed, NDCG@10 and HR@10 of the target. Model: item table shared with the
output (xavier-normal), learned positions, embeddings scaled by sqrt(d), pre-LayerNorm blocks (eps 1e-8) with
1-head causal attention (torch's MultiheadAttention: dropout on the attention weights, as the SASRec reference code)
and a d -> d -> d ReLU FFN, dropout 0.2; Adam lr 0.002, betas (0.9, 0.98), gradient clip 1.

  python3 bench/torch/sasrec_reference.py LOSS STEPS [D MAXLEN BLOCKS BATCH EVAL_EVERY [ATTN_DROPOUT]]
    LOSS: bce (one uniform negative per position) or ce; defaults d 32, maxLen 20, 1 block, batch 32, every 500,
    attention dropout 0.2. Data: BASIN_ML_SMALL or ../shared/data/ml-latest-small beside the repository.
"""
import csv, math, os, random, sys, time
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
torch.manual_seed(1); random.seed(1); np.random.seed(1)
torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
LOSS = sys.argv[1] if len(sys.argv) > 1 else 'bce'
STEPS = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
D, T, B, DROP, LR = 32, 20, 32, 0.2, 0.002
NB = 1
EV = 500
if len(sys.argv) > 3: D, T, NB, B = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
if len(sys.argv) > 7: EV = int(sys.argv[7])
ATT_DROP = float(sys.argv[8]) if len(sys.argv) > 8 else DROP
DATA = os.environ.get('BASIN_ML_SMALL') or os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'shared', 'data', 'ml-latest-small')
rows = {}
with open(os.path.join(DATA, 'ratings.csv')) as f:
    r = csv.reader(f); next(r)
    for i, (u, it, rt, ts) in enumerate(r):
        rows.setdefault(int(u), []).append((int(ts), i, int(it)))
ids = {}
seqs = []
for u in sorted(rows):
    s = [it for _, _, it in sorted(rows[u])]
    seqs.append(s)
seqs = [s for s in seqs if len(s) >= 3]
for s in seqs:
    for it in s: ids.setdefault(it, len(ids) + 1)
seqs = [[ids[i] for i in s] for s in seqs]
V = len(ids)
train = [s[:-2] for s in seqs]; valid = [s[-2] for s in seqs]; test = [s[-1] for s in seqs]
wins = []
for s in train:
    for a in range(0, max(1, len(s) - 1), T):
        w = s[a:a + T + 1]
        if len(w) >= 2: wins.append(w)
print('users', len(seqs), 'items', V, 'windows', len(wins))
pop = np.zeros(V + 1)
for s in train:
    for i in s: pop[i] += 1

class Block(nn.Module):
    def __init__(s):
        super().__init__(); s.ln1 = nn.LayerNorm(D, eps=1e-8); s.att = nn.MultiheadAttention(D, 1, dropout=ATT_DROP, batch_first=True)
        s.ln2 = nn.LayerNorm(D, eps=1e-8); s.f1 = nn.Linear(D, D); s.f2 = nn.Linear(D, D); s.d1 = nn.Dropout(DROP); s.d2 = nn.Dropout(DROP)
    def forward(s, x, m, causal):
        h = s.ln1(x); a, _ = s.att(h, h, h, attn_mask=causal, need_weights=False); x = x + s.d1(a)
        x = (x + s.d2(s.f2(F.relu(s.f1(s.ln2(x)))))) * m
        return x
class Sas(nn.Module):
    def __init__(s):
        super().__init__(); s.E = nn.Embedding(V + 1, D, padding_idx=0); s.P = nn.Embedding(T, D); s.bs = nn.ModuleList([Block() for _ in range(NB)]); s.lnf = nn.LayerNorm(D, eps=1e-8); s.drop = nn.Dropout(DROP)
    def forward(s, x):
        m = (x > 0).float().unsqueeze(-1)
        h = s.drop(s.E(x) * math.sqrt(D) + s.P.weight[: x.shape[1]]) * m
        causal = torch.triu(torch.ones(x.shape[1], x.shape[1], dtype=torch.bool), 1)
        for b in s.bs: h = b(h, m, causal)
        return s.lnf(h)
model = Sas()
for n_, p_ in model.named_parameters():
    if p_.dim() > 1: nn.init.xavier_normal_(p_)
opt = torch.optim.Adam(model.parameters(), lr=LR, betas=(0.9, 0.98), eps=1e-8)
def batch():
    ws = random.sample(wins, B)
    x = torch.zeros(B, T, dtype=torch.long); y = torch.zeros(B, T, dtype=torch.long)
    for i, w in enumerate(ws):
        x[i, :len(w) - 1] = torch.tensor(w[:-1]); y[i, :len(w) - 1] = torch.tensor(w[1:])
    return x, y
def evaluate(which):
    model.eval()
    nd = 0.0; hr = 0; n = 0
    with torch.no_grad():
        for a in range(0, len(seqs), 128):
            us = range(a, min(len(seqs), a + 128))
            hs = [train[u] + ([valid[u]] if which == 'test' else []) for u in us]
            tg = [test[u] if which == 'test' else valid[u] for u in us]
            x = torch.zeros(len(hs), T, dtype=torch.long); last = []
            for i, h in enumerate(hs):
                w = h[-T:]; x[i, :len(w)] = torch.tensor(w); last.append(len(w) - 1)
            hid = model(x)[torch.arange(len(hs)), torch.tensor(last)]
            sc = hid @ model.E.weight.T
            sc[:, 0] = -1e9
            for i, h in enumerate(hs):
                sc[i, torch.tensor(sorted(set(h)))] = -1e9
                t = tg[i]; s = sc[i, t]
                rank = int((sc[i] > s).sum())
                if rank < 10: nd += 1 / math.log2(rank + 2); hr += 1
                n += 1
    model.train()
    return nd / n, hr / n
def pop_eval():
    nd = 0; n = 0
    for u in range(len(seqs)):
        h = train[u] + [valid[u]]; sc = pop.copy(); sc[0] = -1e9; sc[sorted(set(h))] = -1e9
        rank = int((sc > sc[test[u]]).sum())
        if rank < 10: nd += 1 / math.log2(rank + 2)
        n += 1
    return nd / n
print('popularity test NDCG@10 %.4f' % pop_eval())
t0 = time.time()
for step in range(1, STEPS + 1):
    x, y = batch()
    h = model(x)
    m = y > 0
    hv = h[m]; yt = y[m]
    if LOSS == 'bce':
        neg = torch.randint(1, V + 1, yt.shape)
        pos_l = (hv * model.E(yt)).sum(-1); neg_l = (hv * model.E(neg)).sum(-1)
        loss = (F.softplus(-pos_l) + F.softplus(neg_l)).mean()
    else:
        logits = hv @ model.E.weight.T
        loss = F.cross_entropy(logits, yt)
    opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step()
    if step % EV == 0 or step == STEPS:
        v = evaluate('valid'); print(f'step {step} loss {loss.item():.4f} val NDCG@10 {v[0]:.4f} HR@10 {v[1]:.4f}  {time.time()-t0:.0f}s', flush=True)
print('test NDCG@10 %.4f HR@10 %.4f' % evaluate('test'))
