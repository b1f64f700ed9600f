#!/usr/bin/env node
import { Command } from 'commander';
import { registerContainerdConfig } from './containerd-config';
import { registerFsck } from './fsck';
import { registerGc } from './gc';
import { registerDu } from './du';
import { registerHealth } from './health';
import { registerImportLocal } from './import-local';
import { registerInfo } from './info';
import { registerLs } from './ls';
import { registerServe } from './serve';

const program = new Command('contentd')
  .description("containerd's content store as a standalone service: blobs on disk, metadata in SQLite")
  .option('--root <dir>', 'data directory (default: ./data)')
  .option('--config <file>', 'TOML configuration file (see config.example.toml)')
  .showHelpAfterError()
  // Every command takes --root and --config: show them in each command's --help.
  .configureHelp({ showGlobalOptions: true });

registerServe(program);
registerHealth(program);
registerLs(program);
registerDu(program);
registerInfo(program);
registerFsck(program);
registerGc(program);
registerContainerdConfig(program);
registerImportLocal(program);

program.parseAsync(process.argv).catch((e: unknown) => {
  process.stderr.write(`contentd: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
