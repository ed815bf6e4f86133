#!/usr/bin/env node
import '../dist/nic-emulator/cli.js';
