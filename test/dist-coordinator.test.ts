import * as zmq from 'zeromq';
import { describe, expect, it } from 'vitest';
import { CoordinatorClient, CoordinatorServer, EXIT_PEER_FAILED, JobCoordinator, type Order } from '../src/dist/coordinator.js';
import { newJobSecret } from '../src/dist/transport.js';
import { freePort } from './helpers/cli.js';

function coordinator(nodes: number, maxRestarts: number) {
  const orders: Order[] = [];
  const c = new JobCoordinator(nodes, maxRestarts, (o) => orders.push(o));
  return { c, orders };
}

describe('JobCoordinator (the decisions)', () => {
  it('starts when every node has joined, and ends 0 when all finished', () => {
    const { c, orders } = coordinator(3, 1);
    c.report({ kind: 'hello', node: 2 });
    c.report({ kind: 'hello', node: 0 });
    expect(orders).toEqual([]);
    c.report({ kind: 'hello', node: 1 });
    expect(orders).toEqual([{ kind: 'start', gen: 0, restarts: 0 }]);
    for (const node of [0, 1]) c.report({ kind: 'ended', node, gen: 0, outcome: 'finished' });
    expect(orders).toHaveLength(1);
    c.report({ kind: 'ended', node: 2, gen: 0, outcome: 'finished' });
    expect(orders.at(-1)).toEqual({ kind: 'exit', code: 0 });
    expect(c.done).toBe(true);
  });

  it('a failure stops every node at once; when all have stopped it restarts them all, naming the rank that died rather than those that lost their neighbour', () => {
    const { c, orders } = coordinator(2, 1);
    c.report({ kind: 'hello', node: 0 });
    c.report({ kind: 'hello', node: 1 });
    // Node 0's ranks noticed the broken ring first; node 1's report of the real cause comes later.
    c.report({ kind: 'failed', gen: 0, node: 0, rank: 0, code: EXIT_PEER_FAILED, cause: 'stopped: it lost its ring neighbour (exit 3)' });
    expect(orders.at(-1)).toEqual({ kind: 'stop', gen: 0 });
    c.report({ kind: 'failed', gen: 0, node: 1, rank: 3, code: null, cause: 'was killed by signal SIGKILL' });
    expect(orders.filter((o) => o.kind === 'stop')).toHaveLength(1);
    c.report({ kind: 'ended', node: 0, gen: 0, outcome: 'stopped' });
    c.report({ kind: 'ended', node: 1, gen: 0, outcome: 'stopped' });
    expect(orders.at(-1)).toEqual({ kind: 'start', gen: 1, restarts: 1, after: { node: 1, rank: 3, code: null, cause: 'was killed by signal SIGKILL' } });
    // Reports of the old generation no longer count.
    c.report({ kind: 'failed', gen: 0, node: 0, rank: 1, cause: 'exited with code 1' });
    expect(orders.at(-1)!.kind).toBe('start');
    // The budget is used up: the next failure ends the job with the rank named.
    c.report({ kind: 'failed', gen: 1, node: 0, rank: 1, code: 1, cause: 'exited with code 1' });
    c.report({ kind: 'ended', node: 0, gen: 1, outcome: 'stopped' });
    c.report({ kind: 'ended', node: 1, gen: 1, outcome: 'stopped' });
    expect(orders.at(-1)).toEqual({ kind: 'exit', code: 1, message: 'worker rank 1 (node 0) exited with code 1 (after 1 restart(s))' });
  });

  it('does not restart after bad input (exit 2) or a failure while stopping; preemption ends with 75', () => {
    for (const failure of [{ code: 2, cause: 'exited with code 2' }, { code: 1, cause: 'exited with code 1', stopping: true }]) {
      const { c, orders } = coordinator(1, 5);
      c.report({ kind: 'hello', node: 0 });
      c.report({ kind: 'failed', gen: 0, node: 0, rank: 0, ...failure });
      c.report({ kind: 'ended', node: 0, gen: 0, outcome: 'stopped' });
      expect(orders.at(-1)).toEqual({ kind: 'exit', code: 1, message: `worker rank 0 ${failure.cause}` });
    }
    const { c, orders } = coordinator(2, 5);
    c.report({ kind: 'hello', node: 0 });
    c.report({ kind: 'hello', node: 1 });
    c.report({ kind: 'ended', node: 0, gen: 0, outcome: 'preempted' });
    c.report({ kind: 'ended', node: 1, gen: 0, outcome: 'preempted' });
    expect(orders.at(-1)).toEqual({ kind: 'exit', code: 75 });
  });

  it('a lost node stops the generation and ends the job, naming the node', () => {
    const { c, orders } = coordinator(2, 5);
    c.report({ kind: 'hello', node: 0 });
    c.report({ kind: 'hello', node: 1 });
    c.nodeLost(1, 'sent nothing for 61.0 s');
    expect(orders.slice(-2)).toEqual([
      { kind: 'stop', gen: 0 },
      { kind: 'exit', code: 1, message: 'the launcher of node 1 sent nothing for 61.0 s' },
    ]);
  });
});

describe('CoordinatorServer / CoordinatorClient over ZeroMQ', () => {
  const withTimeout = <T>(p: Promise<T>, ms: number) => Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no order within ${ms} ms`)), ms))]);

  it('orders reach every node; a socket without the job secret is refused and cannot join', async () => {
    const secret = newJobSecret();
    const address = `tcp://127.0.0.1:${await freePort()}`;
    const o = { address, secret, nodes: 2, maxRestarts: 0, silenceMs: 0, joinTimeoutMs: 30_000 };
    const server = await CoordinatorServer.start(o);
    const local = server.link();

    // A stranger: right address and protocol, wrong keys. Its hello must not count as node 1.
    const stranger = new CoordinatorClient({ ...o, secret: newJobSecret() }, 1);
    stranger.send({ kind: 'hello', node: 1 });
    local.send({ kind: 'hello', node: 0 });
    // A plain (no CURVE) socket is refused too.
    const plain = new zmq.Dealer({ linger: 0 });
    plain.connect(address);
    void plain.send('hello').catch(() => {});
    await new Promise((r) => setTimeout(r, 1000));
    expect(server.refused).toBeGreaterThanOrEqual(2);
    const none = await Promise.race([local.next(), new Promise((r) => setTimeout(() => r('nothing'), 300))]);
    expect(none).toBe('nothing');

    const member = new CoordinatorClient(o, 1);
    member.send({ kind: 'hello', node: 1 });
    // The local link already has a pending next() from the race above: read the start from the member, then the local one.
    expect(await withTimeout(member.next(), 10_000)).toEqual({ kind: 'start', gen: 0, restarts: 0 });
    member.send({ kind: 'failed', gen: 0, node: 1, rank: 3, code: 1, cause: 'exited with code 1' });
    expect(await withTimeout(member.next(), 10_000)).toEqual({ kind: 'stop', gen: 0 });
    member.send({ kind: 'ended', node: 1, gen: 0, outcome: 'stopped' });
    local.send({ kind: 'ended', node: 0, gen: 0, outcome: 'stopped' });
    expect(await withTimeout(member.next(), 10_000)).toEqual({ kind: 'exit', code: 1, message: 'worker rank 3 (node 1) exited with code 1' });
    // The stranger heard nothing of it.
    expect(await Promise.race([stranger.next(), new Promise((r) => setTimeout(() => r('nothing'), 300))])).toBe('nothing');
    plain.close();
    await Promise.all([stranger.close(), member.close(), local.close()]);
  }, 30_000);

  it('a node that cannot reach the coordinator gives up after the join timeout, in one line', async () => {
    const address = `tcp://127.0.0.1:${await freePort()}`;
    const client = new CoordinatorClient({ address, secret: newJobSecret(), nodes: 2, maxRestarts: 0, silenceMs: 0, joinTimeoutMs: 1500 }, 1);
    client.send({ kind: 'hello', node: 1 });
    const o = await withTimeout(client.next(), 10_000);
    expect(o).toMatchObject({ kind: 'exit', code: 1 });
    expect((o as { message: string }).message).toMatch(new RegExp(`^no answer from the coordinator at ${address.replace(/\./g, '\\.')} within \\d+ s`));
    await client.close();
  }, 20_000);
});
