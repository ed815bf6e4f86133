#!/usr/bin/env node
import '../dist/mgmt-station/cli.js';
