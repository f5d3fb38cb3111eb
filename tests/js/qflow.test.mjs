// QflowAuth in Node, imported from the assembled package, against the emulator.
// The same scenarios run in workerd from workerd-scenarios.test.mjs.
import * as qauth from "qauth";
import scenarios from "../scenarios/qflow.mjs";
import { runInNode } from "./helpers.mjs";

runInNode(scenarios, qauth);
