#!/usr/bin/env node
/**
 * `irsa-webhook <command>`: operator tools around the webhook (the commands are listed in cli/main.ts).
 * @module
 */
import { runCli } from '../cli/main.ts'
import { processIo } from '../cli/shared/io.ts'

process.exitCode = await runCli(process.argv.slice(2), processIo())
