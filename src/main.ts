/**
 * Process entry: load configuration, start the gateway, stop gracefully on SIGTERM/SIGINT.
 * Exit codes: 0 clean stop, 78 bad configuration (EX_CONFIG), 1 failed start.
 */
import 'reflect-metadata';
import { ConfigError, loadConfig, type GatewayConfig } from './config';
import { Gateway } from './app';

async function main(): Promise<void> {
  let config: GatewayConfig;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`ticket-gateway: ${err.message}\n`);
      process.exit(78);
    }
    throw err;
  }

  let gateway: Gateway;
  try {
    gateway = await Gateway.start({ config });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`ticket-gateway: failed to start: ${message}\n`);
    process.exit(err instanceof ConfigError ? 78 : 1);
  }

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    gateway.log.info({ signal }, 'stopping');
    gateway.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        gateway.log.error({ err }, 'unclean stop');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

void main();
