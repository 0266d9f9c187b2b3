/**
 * Tag expressions select devices by tags: `vip && (beijing || shanghai) && !churned`.
 * Grammar (precedence ! > && > ||; parentheses group):
 *   expr := and ('||' and)*     and := unary ('&&' unary)*
 *   unary := '!' unary | '(' expr ')' | TAG          TAG := [A-Za-z0-9._:@-]+
 * Used by the push API and the campaign dispatcher, so it lives beside the tag index.
 */
export type TagExpr =
  | { op: 'tag'; tag: string }
  | { op: 'not'; arg: TagExpr }
  | { op: 'and'; args: TagExpr[] }
  | { op: 'or'; args: TagExpr[] };

export class TagExpressionError extends Error {
  override name = 'TagExpressionError';
}

const TAG_RE = /[A-Za-z0-9._:@-]/;
export const MAX_EXPRESSION_TAGS = 32;

function tokenize(src: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (c === ' ' || c === '\t') {
      i++;
    } else if (c === '(' || c === ')' || c === '!') {
      out.push(c);
      i++;
    } else if ((c === '&' || c === '|') && src[i + 1] === c) {
      out.push(c + c);
      i += 2;
    } else if (TAG_RE.test(c)) {
      let j = i;
      while (j < src.length && TAG_RE.test(src[j]!)) j++;
      out.push(src.slice(i, j));
      i = j;
    } else {
      throw new TagExpressionError(`unexpected '${c}' at ${i}`);
    }
  }
  return out;
}

export function parseTagExpression(src: string): TagExpr {
  if (src.length > 1024) throw new TagExpressionError('expression longer than 1024 characters');
  const tokens = tokenize(src);
  let pos = 0;
  let tagCount = 0;
  const peek = () => tokens[pos];
  const parseOr = (depth: number): TagExpr => {
    const args = [parseAnd(depth)];
    while (peek() === '||') {
      pos++;
      args.push(parseAnd(depth));
    }
    return args.length === 1 ? args[0]! : { op: 'or', args };
  };
  const parseAnd = (depth: number): TagExpr => {
    const args = [parseUnary(depth)];
    while (peek() === '&&') {
      pos++;
      args.push(parseUnary(depth));
    }
    return args.length === 1 ? args[0]! : { op: 'and', args };
  };
  const parseUnary = (depth: number): TagExpr => {
    if (depth > 16) throw new TagExpressionError('expression nested deeper than 16');
    const t = tokens[pos++];
    if (t === undefined) throw new TagExpressionError('unexpected end of expression');
    if (t === '!') return { op: 'not', arg: parseUnary(depth + 1) };
    if (t === '(') {
      const e = parseOr(depth + 1);
      if (tokens[pos++] !== ')') throw new TagExpressionError("missing ')'");
      return e;
    }
    if (t === ')' || t === '&&' || t === '||') throw new TagExpressionError(`unexpected '${t}'`);
    if (t.length > 64) throw new TagExpressionError(`tag '${t.slice(0, 20)}...' longer than 64`);
    if (++tagCount > MAX_EXPRESSION_TAGS)
      throw new TagExpressionError(`more than ${MAX_EXPRESSION_TAGS} tags`);
    return { op: 'tag', tag: t };
  };
  const expr = parseOr(0);
  if (pos !== tokens.length) throw new TagExpressionError(`unexpected '${tokens[pos]}'`);
  return expr;
}

export function tagsOf(expr: TagExpr, out = new Set<string>()): Set<string> {
  if (expr.op === 'tag') out.add(expr.tag);
  else if (expr.op === 'not') tagsOf(expr.arg, out);
  else for (const a of expr.args) tagsOf(a, out);
  return out;
}

export function usesNot(expr: TagExpr): boolean {
  if (expr.op === 'tag') return false;
  if (expr.op === 'not') return true;
  return expr.args.some(usesNot);
}

/** Does a device with `tags` match? */
export function matchesTags(expr: TagExpr, tags: ReadonlySet<string>): boolean {
  switch (expr.op) {
    case 'tag':
      return tags.has(expr.tag);
    case 'not':
      return !matchesTags(expr.arg, tags);
    case 'and':
      return expr.args.every((a) => matchesTags(a, tags));
    case 'or':
      return expr.args.some((a) => matchesTags(a, tags));
  }
}

/**
 * Evaluates over member sets: `members(tag)` gives the devices of a tag, `universe` every
 * device (needed only when the expression uses `!`).
 */
export function evaluateTagExpression(
  expr: TagExpr,
  members: (tag: string) => ReadonlySet<string>,
  universe: ReadonlySet<string>,
): Set<string> {
  switch (expr.op) {
    case 'tag':
      return new Set(members(expr.tag));
    case 'not': {
      const inner = evaluateTagExpression(expr.arg, members, universe);
      const out = new Set<string>();
      for (const d of universe) if (!inner.has(d)) out.add(d);
      return out;
    }
    case 'and': {
      const sets = expr.args
        .map((a) => evaluateTagExpression(a, members, universe))
        .sort((x, y) => x.size - y.size);
      const out = new Set<string>();
      for (const d of sets[0]!) if (sets.every((s) => s.has(d))) out.add(d);
      return out;
    }
    case 'or': {
      const out = new Set<string>();
      for (const a of expr.args) for (const d of evaluateTagExpression(a, members, universe)) out.add(d);
      return out;
    }
  }
}
