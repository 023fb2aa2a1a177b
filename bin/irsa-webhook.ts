#!/usr/bin/env node
import { processIo } from '../function/cli/io.ts'
/**
 * `irsa-webhook <command>`: operator tools around the webhook.
 *   mutate       run the webhook's decision on manifests (no cluster)
 *   oidc-issuer  print the Vultr OIDC issuer registration payload from the cluster's discovery documents
 *   doctor       check a live installation
 * @module
 */
import { runCli } from '../function/cli/main.ts'

process.exitCode = await runCli(process.argv.slice(2), processIo())
