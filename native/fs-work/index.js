'use strict';
module.exports = require('./build/Release/fs_work.node');
