# Classify eval predictions: exact / prefix miscopied / suffix words not reproduced / wrong order / wrong tags.
import json, sys, re, collections
def classify(ref, gen):
    g = gen.strip()
    exp = f"<sentence>{ref}</sentence>\n<verified>Yes</verified>"
    if g == exp: return "exact"
    m = re.search(r"<sentence>(.*?)</sentence>", g, re.S)
    body = (m.group(1) if m else g.split("\n")[0].replace("<sentence>","")).strip()
    rw, bw = ref.split(), body.split()
    if body == ref: return "right sentence, wrong tags"
    pre = rw[:-3]
    if bw[:len(pre)] != pre: return "prefix miscopied"
    if sorted(bw[len(pre):]) == sorted(rw[-3:]): return "right words, wrong order"
    return "suffix words not reproduced"
for path in sys.argv[1:]:
    c = collections.Counter(); ex = collections.defaultdict(list)
    for line in open(path):
        r = json.loads(line); k = classify(r["original_document"], r["generated_response"]); c[k]+=1
        if len(ex[k]) < 3: ex[k].append((r["original_document"], r["generated_response"][:200]))
    n = sum(c.values()); print(path, n)
    for k,v in c.most_common(): print(f"  {k:32s} {v:4d} {v/n:.3f}")
    if "-v" in sys.argv[0:1] or True:
        for k in ex:
            if k=="exact": continue
            for a,b in ex[k][:2]: print("   ", k, "|", a, "|", repr(b))
