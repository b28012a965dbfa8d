/**
 * vitest's default reporter with progress for a long run: at the start, how many test files
 * each project has; on every finished file, a running count and the time so far in front of
 * vitest's own line (which names the project), e.g.
 *   `[37/155 2m14s · integration 30/118] ✓ integration test/proxy/websocket.test.ts (5 tests) 2833ms`.
 */
import { DefaultReporter, type TestModule, type TestSpecification } from 'vitest/node';

export default class ProgressReporter extends DefaultReporter {
  private total = 0;
  private done = 0;
  private t0 = Date.now();
  private readonly perProject = new Map<string, { total: number; done: number }>();

  override onTestRunStart(specifications: ReadonlyArray<TestSpecification>): void {
    super.onTestRunStart(specifications);
    this.t0 = Date.now();
    this.total = specifications.length;
    this.done = 0;
    this.perProject.clear();
    for (const s of specifications) {
      const p = this.perProject.get(s.project.name) ?? { total: 0, done: 0 };
      p.total++;
      this.perProject.set(s.project.name, p);
    }
    const projects = [...this.perProject].map(([name, p]) => `${name || 'tests'} ${p.total}`).join(', ');
    this.log(`${this.total} test files (${projects}), ${this.ctx.config.maxWorkers} at a time`);
  }

  protected override printTestModule(testModule: TestModule): void {
    const state = testModule.state();
    if (state === 'queued' || state === 'pending') return super.printTestModule(testModule);
    const project = testModule.project.name;
    const p = this.perProject.get(project);
    if (p) p.done++;
    this.done++;
    const s = Math.round((Date.now() - this.t0) / 1000);
    const counter = `[${this.done}/${this.total} ${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s${p ? ` · ${project || 'tests'} ${p.done}/${p.total}` : ''}]`;
    const log = this.log;
    let first = true;
    this.log = (...messages: unknown[]) => {
      if (first) {
        first = false;
        log.call(this, counter, ...messages);
      } else log.call(this, ...messages);
    };
    try {
      super.printTestModule(testModule);
    } finally {
      this.log = log;
    }
  }
}
