import { mount } from 'svelte';
import { localizeDocument } from '../platform/i18n.ts';
import '../ui/base.css';
import App from './App.svelte';

localizeDocument('page_diagnosticsTitle');
mount(App, { target: document.getElementById('app')! });
