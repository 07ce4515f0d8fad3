// Loads each BPMN file named on the command line in bpmn-moddle, the model
// library under bpmn.io and Camunda Modeler, and prints one JSON line per
// file: its warnings (unknown elements, unresolved references, duplicate
// ids, anything the library could not place) and what it read. Exits 1 when
// any file had a warning or could not be read at all.
//
// With `--resave DIR` first, each file is also written again into DIR as
// the library serialises what it read: what bpmn.io and Camunda Modeler
// save after opening the file, for the test to import once more.
//
// Run by tests/it/bpmn.rs; `.ci/run` installs the library (`npm ci` here).
import { readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { BpmnModdle } from 'bpmn-moddle';

const moddle = new BpmnModdle();
let failed = false;
let args = process.argv.slice(2);
let resave = null;
if (args[0] === '--resave') {
  resave = args[1];
  args = args.slice(2);
}

for (const file of args) {
  try {
    const xml = await readFile(file, 'utf8');
    const { rootElement, warnings } = await moddle.fromXML(xml, 'bpmn:Definitions');
    const processes = rootElement.rootElements.filter((e) => e.$type === 'bpmn:Process');
    const shapes = (rootElement.diagrams || []).flatMap((d) => d.plane.planeElement || []);
    const counts = processes.map((p) => ({
      id: p.id,
      flowElements: (p.flowElements || []).length,
      sequenceFlows: (p.flowElements || []).filter((e) => e.$type === 'bpmn:SequenceFlow').length,
    }));
    const messages = warnings.map((w) => w.message);
    if (messages.length > 0) failed = true;
    if (resave !== null) {
      const { xml: again } = await moddle.toXML(rootElement, { format: true });
      await writeFile(join(resave, basename(file)), again);
    }
    console.log(JSON.stringify({ file, warnings: messages, processes: counts, diagramElements: shapes.length }));
  } catch (err) {
    failed = true;
    console.log(JSON.stringify({ file, error: String(err && err.message ? err.message : err) }));
  }
}

process.exit(failed ? 1 : 0);
