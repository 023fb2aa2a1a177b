#!/usr/bin/env node
/**
 * `irsa-webhook <command>`: operator tools around the webhook (the commands are listed in function/cli/main.ts).
 * @module
 */
import { processIo } from '../function/cli/io.ts'
import { runCli } from '../function/cli/main.ts'

process.exitCode = await runCli(process.argv.slice(2), processIo())
