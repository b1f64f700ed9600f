import type { Command } from 'commander';
import type { Config } from '../config/config';
import { commandConfig } from './open';
import { printText } from './output';

/** The name containerd lists this store under in `ctr plugins ls`. */
export const PROXY_PLUGIN_NAME = 'contentd';

/**
 * containerd configuration (version 2) that makes contentd its content store:
 * the built-in store disabled, this server as a content proxy plugin. A
 * complete file on its own, meant as a drop-in that containerd's config
 * imports: containerd appends imported disabled_plugins and merges
 * proxy_plugins into the main config.
 */
export function containerdConfigSnippet(config: Config): string {
  // JSON string syntax is valid TOML basic string syntax.
  const address = JSON.stringify(config.grpc.address);
  return `# contentd as containerd's content store (containerd config version 2).
# Save as e.g. /etc/containerd/contentd.toml and add to the top of
# /etc/containerd/config.toml (version = 2):  imports = ["/etc/containerd/contentd.toml"]
# containerd sends no namespace to a proxy plugin: one contentd root per containerd.
version = 2
disabled_plugins = ["io.containerd.content.v1.content"]

[proxy_plugins]
  [proxy_plugins.${PROXY_PLUGIN_NAME}]
    type = "content"
    address = ${address}
`;
}

export function registerContainerdConfig(program: Command): void {
  program
    .command('containerd-config')
    .description("print the containerd config (version 2) that makes this server containerd's content store")
    .option('--address <socket>', 'the unix socket the server listens on (default: from --config, else <root>/contentd.sock)')
    .addHelpText(
      'after',
      `
Example:
  contentd --config /etc/contentd/config.toml containerd-config > /etc/containerd/contentd.toml
  then in /etc/containerd/config.toml:  imports = ["/etc/containerd/contentd.toml"]`,
    )
    .action((_flags: { address?: string }, command: Command) => {
      printText(containerdConfigSnippet(commandConfig(command)));
    });
}
